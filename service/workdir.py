"""A worker's own scratch folder, and the removal of those that dead workers left behind.

Each worker works in `{base}/worker-{pid}-{random}/` (rendered DOCX, PDFs, LibreOffice
profiles) and holds an exclusive flock on its `.lock` file for as long as it lives: the
kernel lets go of it when the worker dies, SIGKILL included. On start, a worker removes
every sibling `worker-*` folder whose lock is free: it belonged to a worker that is gone.
Several workers may share a base (RELIEFDOCS_WORK_DIR); claiming and sweeping happen under
the base's own `.lock`, so a folder is never seen before its owner locks it. Nothing in
base but `worker-*` folders is touched.

base: RELIEFDOCS_WORK_DIR, or `reliefdocs-{uid}` in the system's temporary folder.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import secrets
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from service.errors import ConfigError

log = logging.getLogger("reliefdocs.workdir")
OWN = re.compile(r"worker-\d+-[0-9a-f]{8}")
LOCK = ".lock"


class WorkDir:
    """The worker's folder, locked while the worker lives. release() removes it."""

    def __init__(self, path: Path, lock_fd: int):
        self.path = path
        self._lock_fd = lock_fd

    def release(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        os.close(self._lock_fd)


def default_base() -> Path:
    return Path(tempfile.gettempdir()) / f"reliefdocs-{os.getuid()}"


def claim(base: str | os.PathLike | None = None) -> WorkDir:
    """Remove the folders of dead workers in base, then create and lock this worker's own."""
    root = _base(base)
    with _locked(root / LOCK):
        removed = sweep(root)
        path = root / f"worker-{os.getpid()}-{secrets.token_hex(4)}"
        path.mkdir(mode=0o700)
        fd = os.open(path / LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    if removed:
        log.info("removed the work folders of stopped workers", extra={"folders": removed})
    return WorkDir(path, fd)


def sweep(root: Path) -> int:
    """Remove the worker folders in root whose lock no living worker holds (call under root's lock)."""
    removed = 0
    for entry in root.iterdir():
        if OWN.fullmatch(entry.name) and entry.is_dir() and not entry.is_symlink() and _abandoned(entry):
            removed += 1
    return removed


def _abandoned(folder: Path) -> bool:
    """Remove folder if its lock is free (a worker creates its lock under the base lock, so a
    folder without one was left by a worker that died while creating it)."""
    try:
        fd = os.open(folder / LOCK, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        shutil.rmtree(folder, ignore_errors=True)
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False  # a living worker's
    else:
        shutil.rmtree(folder, ignore_errors=True)
        return True
    finally:
        os.close(fd)


def _base(base: str | os.PathLike | None) -> Path:
    root = Path(base) if base else default_base()
    try:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError("RELIEFDOCS_WORK_DIR", f"cannot create the work folder: {exc.strerror}") from None
    if not base and (root.is_symlink() or root.stat().st_uid != os.getuid()):
        raise ConfigError("RELIEFDOCS_WORK_DIR", f"{root} is not this user's own folder: set a work folder")
    if not os.access(root, os.W_OK | os.X_OK):
        raise ConfigError("RELIEFDOCS_WORK_DIR", f"cannot write to the work folder {root}")
    return root


@contextmanager
def _locked(path: Path):
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
