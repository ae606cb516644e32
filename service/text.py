"""Text that came from a record, made safe to print, log or put in a header.

A record may carry any bytes; once decoded, a string may still hold control characters (an
ANSI escape that rewrites an operator's terminal), bidirectional overrides, or lone
surrogates (valid in JSON, impossible to encode as UTF-8). `safe_text` escapes all of them
the way Python's repr does and cuts the result to a length.
"""

from __future__ import annotations

import re

# C0 and C1 controls, DEL, lone surrogates, bidi embeddings/overrides/isolates, line/paragraph separators
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escape(m: re.Match) -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def safe_text(text: str, limit: int = 200) -> str:
    """`text` with every unsafe character escaped (\\x1b, \\u202e, \\ud800), at most `limit` characters."""
    out = _UNSAFE.sub(_escape, text)
    return out if len(out) <= limit else out[: max(0, limit - 1)] + "…"
