"""Stage 4 (edge): DOCX -> PDF with LibreOffice.

Starting LibreOffice costs more than converting (../shared/testing.md), so a batch's
documents go to ONE `soffice --convert-to pdf` call. Each of the `slots` LibreOffice
processes that may run at once has its own profile folder (two processes sharing a profile
block each other), and every call has a timeout after which its whole process group is
killed. A crash, a hang or a missing output is Transient: the caller retries.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

from service.errors import ConfigError, Transient


class LibreOffice:
    def __init__(self, soffice: str, work_dir: Path, slots: int, timeout: float):
        self.soffice = soffice
        self.timeout = timeout
        self.work_dir = Path(work_dir)
        self._slots: queue.Queue[Path] = queue.Queue()
        for i in range(slots):
            self._slots.put(self.work_dir / f"lo-profile-{os.getpid()}-{i}")
        self.processes_started = 0
        self.kills = 0
        self._running: set[subprocess.Popen] = set()

    def check(self) -> None:
        if shutil.which(self.soffice) is None:
            raise ConfigError("RELIEFDOCS_SOFFICE", f"LibreOffice executable '{self.soffice}' not found")

    @contextmanager
    def _slot(self):
        profile = self._slots.get()
        try:
            yield profile
        finally:
            self._slots.put(profile)

    def convert(self, docx: list[Path], out_dir: Path) -> list[Path]:
        """Convert the given DOCX files to PDF in out_dir, in one LibreOffice process."""
        out_dir.mkdir(parents=True, exist_ok=True)
        expected = [out_dir / (p.stem + ".pdf") for p in docx]
        for p in expected:
            p.unlink(missing_ok=True)
        with self._slot() as profile:
            cmd = [self.soffice, f"-env:UserInstallation=file://{profile}", "--headless", "--norestore",
                   "--nolockcheck", "--convert-to", "pdf:writer_pdf_Export", "--outdir", str(out_dir),
                   *map(str, docx)]
            env = {**os.environ, "HOME": str(profile), "SAL_USE_VCLPLUGIN": "svp"}
            started = time.monotonic()
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                                    start_new_session=True)
            self.processes_started += 1
            self._running.add(proc)
            try:
                out, _ = proc.communicate(timeout=self.timeout)
            except subprocess.TimeoutExpired:
                self._kill(proc)
                raise Transient("libreoffice", f"conversion of {len(docx)} documents timed out after "
                                               f"{self.timeout:.0f} s; process killed") from None
            finally:
                self._running.discard(proc)
            if proc.returncode != 0:
                self._kill(proc)
                raise Transient("libreoffice", f"soffice exited {proc.returncode} after "
                                               f"{time.monotonic() - started:.1f} s")
            missing = [p.name for p in expected if not p.is_file() or p.stat().st_size == 0]
            if missing:
                raise Transient("libreoffice", f"soffice produced no PDF for {', '.join(missing)}")
        return expected

    def kill_all(self) -> None:
        """Stop every running conversion (shutdown past its deadline)."""
        for proc in list(self._running):
            self._kill(proc)

    def _kill(self, proc: subprocess.Popen) -> None:
        self.kills += 1
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
