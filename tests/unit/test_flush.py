"""Object keys of a bundle: never over S3's 1,024 bytes, never a `.` or `..` segment,
whatever the batch_id (it is up to 128 characters of any Unicode text)."""

import hashlib

import pytest

from service.batching import SealedBatch
from service.flush import batch_folder, bundle_id_of, folder_of
from service.store import FileStore, safe_key

NAMES = ("bundle.pdf", "bundle-public.pdf", "motion.pdf", "order.pdf", "order.docx", "proof-of-service.pdf",
         "exhibit-a.pdf", "exhibit-c-public.pdf", "case-orders.pdf", "manifest.json")
HOSTILE = [".", "..", "...", "a/../b", "../../etc", "./", "漢" * 128, "%" * 128, "😀" * 128, "a" * 128,
           "/" * 128, ". ." , "\u202e" * 128, "~" * 128, "CON", "a\\..\\b"]


def batch(batch_id: str, court: str = "X" * 32) -> SealedBatch:
    return SealedBatch(court_code=court, batch_id=batch_id, volume=1, partition=0, first_offset=0, closing_offset=1,
                       closing_timestamp_ms=0, closed_by="upstream", decisions=(), records=())


@pytest.mark.parametrize("batch_id", HOSTILE)
def test_keys_fit_s3_and_stay_in_their_folder(batch_id):
    sb = batch(batch_id)
    folder = folder_of(sb, bundle_id_of(sb))
    for name in NAMES:
        key = f"{'p' * 512}/{folder}/{name}"  # the longest prefix S3Store accepts
        assert len(key.encode("utf-8")) <= 1024
        assert safe_key(key)
        assert all(seg.strip(".") for seg in key.split("/"))
    assert folder.count("/") == 2 and folder.startswith(sb.court_code + "/")
    assert len(folder.split("/")[1]) <= 200  # a file name holds 255 bytes


def test_plain_ids_keep_their_readable_folder():
    assert batch_folder("SD-2026-11-B1") == "SD-2026-11-B1"
    assert batch_folder("a.b_c-d") == "a.b_c-d"
    assert batch_folder("a/b c") == "a%2Fb%20c"
    assert batch_folder("x" * 128) == "x" * 128


@pytest.mark.parametrize("batch_id", [".", "..", "...", "漢" * 128, "%" * 128, "😀" * 60])
def test_hostile_ids_get_a_hashed_folder(batch_id):
    assert batch_folder(batch_id) == "_h-" + hashlib.sha256(batch_id.encode()).hexdigest()[:32]


def test_distinct_ids_get_distinct_folders():
    assert len({batch_folder(b) for b in HOSTILE}) == len(HOSTILE)


@pytest.mark.parametrize("batch_id", HOSTILE)
def test_file_store_writes_every_key_inside_the_court_folder(tmp_path, batch_id):
    store = FileStore(f"file://{tmp_path}")
    sb = batch(batch_id, court="SD")
    folder = folder_of(sb, bundle_id_of(sb))
    for name in NAMES:
        store.put_bytes(f"{folder}/{name}", b"x", "application/octet-stream")
    written = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert len(written) == len(NAMES)
    assert all(str(p).startswith(f"{folder}/") for p in written)
