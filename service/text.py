"""Text that came from a record, made safe to print, log or put in a header.

A record may carry any bytes; once decoded, a string may still hold control characters (an
ANSI escape that rewrites an operator's terminal), bidirectional overrides and marks that
reorder or hide text, or lone surrogates (valid in JSON, impossible to encode as UTF-8).
`safe_text` escapes all of them the way Python's repr does and cuts the result to a length.
"""

from __future__ import annotations

import re
from typing import Any

# C0 and C1 controls, DEL, lone surrogates, bidi marks, embeddings, overrides and isolates,
# line and paragraph separators
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escape(m: re.Match) -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def safe_text(value: Any, limit: int = 200) -> str:
    """`value` (text, or bytes decoded as UTF-8 with replacement; None is "-") with every unsafe
    character escaped (\\x1b, \\u202e, \\ud800), cut after `limit` characters (then "...")."""
    if value is None:
        return "-"
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    out = _UNSAFE.sub(_escape, str(value))
    if len(out) <= limit:
        return out
    cut = out[:limit]
    cut = re.sub(r"\\(x[0-9a-f]?|u[0-9a-f]{0,3})?$", "", cut)  # never half an escape
    return cut + "..."
