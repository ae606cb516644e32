"""service/workdir.py: a worker removes the folders of dead workers, never a living one's."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from service import workdir
from service.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def other_worker(base: Path) -> tuple[subprocess.Popen, Path]:
    """Another process that claims a folder in base and lives until its stdin closes."""
    code = "import sys; from service import workdir; w = workdir.claim(sys.argv[1]); print(w.path, flush=True); " \
           "sys.stdin.read()"
    proc = subprocess.Popen([sys.executable, "-c", code, str(base)], cwd=ROOT, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    return proc, Path(proc.stdout.readline().strip())


def test_a_living_workers_folder_is_kept_and_a_dead_ones_removed(tmp_path):
    living, living_dir = other_worker(tmp_path)
    dead, dead_dir = other_worker(tmp_path)
    try:
        (dead_dir / "lo-profile-1-0").mkdir()
        (dead_dir / "bundle" / "out").mkdir(parents=True)
        dead.send_signal(signal.SIGKILL)
        dead.wait()
        mine = workdir.claim(tmp_path)
        assert living_dir.is_dir() and (living_dir / ".lock").is_file()
        assert not dead_dir.exists()
        assert mine.path.parent == tmp_path and mine.path.is_dir()
        mine.release()
        assert not mine.path.exists()
        assert living_dir.is_dir()
    finally:
        living.kill()
        living.wait()


def test_two_claims_in_one_base_get_two_folders(tmp_path):
    a, b = workdir.claim(tmp_path), workdir.claim(tmp_path)
    assert a.path != b.path and a.path.is_dir() and b.path.is_dir()  # b's sweep kept a's locked folder
    a.release()
    b.release()


def test_only_worker_folders_are_touched(tmp_path):
    unlocked = tmp_path / "worker-123-0badcafe"  # its worker died before it could lock it
    unlocked.mkdir()
    (tmp_path / "worker-notes").mkdir()
    (tmp_path / "keep.txt").write_text("x")
    (tmp_path / "worker-1-deadbeef.txt").write_text("not a folder")
    mine = workdir.claim(tmp_path)
    assert not unlocked.exists()
    assert (tmp_path / "worker-notes").is_dir() and (tmp_path / "keep.txt").is_file()
    assert (tmp_path / "worker-1-deadbeef.txt").is_file()
    mine.release()


def test_default_base_is_the_users_own(monkeypatch, tmp_path):
    monkeypatch.setattr(workdir.tempfile, "gettempdir", lambda: str(tmp_path))
    mine = workdir.claim(None)
    assert mine.path.parent == tmp_path / f"reliefdocs-{workdir.os.getuid()}"
    mine.release()


def test_a_work_dir_that_cannot_be_made_is_a_config_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError) as err:
        workdir.claim(tmp_path / "file" / "work")
    assert err.value.setting == "RELIEFDOCS_WORK_DIR"
