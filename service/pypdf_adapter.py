"""What reliefdocs needs from pypdf beyond its documented API, in one place (issue 13).
tests/unit/test_adapters.py pins both behaviours; pypdf is pinned <8 because of them.

- `set_file_id(writer, seed)`: the trailer's /ID, derived from the bundle instead of random,
  so that the same batch gives the same bytes (pypdf has no public setter).
- `live_objects(writer)`: how many objects a writer still holds, to know when merging
  identical objects has converged (pypdf has no public count).
"""

from __future__ import annotations

import hashlib

from pypdf import PdfWriter
from pypdf.generic import ArrayObject, ByteStringObject


def set_file_id(writer: PdfWriter, seed: str) -> None:
    ident = ByteStringObject(hashlib.md5(seed.encode()).digest())
    writer._ID = ArrayObject([ident, ident])


def live_objects(writer: PdfWriter) -> int:
    return sum(o is not None for o in writer._objects)
