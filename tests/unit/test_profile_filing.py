"""tools/profile_filing.py's pure parts: the fixed batch, and the cache key of a DOCX (its
entries, not its zip dates, so a combined DOCX saved again is not converted again)."""

import zipfile
from datetime import datetime

from service import docx_adapter
from tools import profile_filing


def test_the_batch_is_one_court_valid_and_the_same_every_time():
    one, two = profile_filing.sealed_batch(12), profile_filing.sealed_batch(12)
    assert len(one.decisions) == 12 and {d.court_code for d in one.decisions} == {"LA"}
    assert [d.digest for d in one.decisions] == [d.digest for d in two.decisions]


def test_a_docx_is_known_by_its_entries_not_its_dates(tmp_path):
    entries = [("[Content_Types].xml", b"<Types/>"), ("word/document.xml", b"<w:document/>")]
    docx_adapter.write_zip(tmp_path / "a.docx", entries, datetime(2026, 1, 2))
    docx_adapter.write_zip(tmp_path / "b.docx", entries, datetime(2027, 3, 4))
    docx_adapter.write_zip(tmp_path / "c.docx", [entries[0], ("word/document.xml", b"<w:document />")],
                           datetime(2026, 1, 2))
    key = profile_filing.CachedConverter.key
    assert (tmp_path / "a.docx").read_bytes() != (tmp_path / "b.docx").read_bytes()
    assert key(tmp_path / "a.docx", False) == key(tmp_path / "b.docx", False)
    assert key(tmp_path / "a.docx", False) != key(tmp_path / "c.docx", False)
    assert key(tmp_path / "a.docx", False) != key(tmp_path / "a.docx", True)
