"""Stage 4 (edge): DOCX -> PDF with LibreOffice.

Starting LibreOffice costs more than converting (docs/testing.md, "LibreOffice"), so:
- a batch's documents always go to one LibreOffice process together;
- `WarmLibreOffice` (the default where Debian's python3-uno is installed): each of the
  `slots` LibreOffice processes stays running between batches, driven over UNO by
  service/lo_bridge.py, so no batch pays for a start-up;
- `ColdLibreOffice`: each batch runs one `soffice --convert-to pdf`.
Both are a `Converter`, the only thing callers know; `libreoffice()` picks one for a mode.
Each slot has its own profile folder (two processes sharing a profile block each other).
Every conversion has a timeout after which the slot's whole process group is killed; a
crash, a hang or a missing output is Transient (the caller retries), and the next
conversion on that slot starts a fresh LibreOffice.
Every LibreOffice command runs under service/lo_guard.py, which leads its process group and
kills the group if the worker dies, so no LibreOffice outlives its worker (SIGKILL included).
"""

from __future__ import annotations

import json
import logging
import os
import queue
import select
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from service.errors import ConfigError, Transient

log = logging.getLogger("reliefdocs.convert")
BRIDGE = Path(__file__).with_name("lo_bridge.py")
GUARD = Path(__file__).with_name("lo_guard.py")


def guarded(cmd: list[str], **popen) -> subprocess.Popen:
    """Start cmd in a new process group led by service/lo_guard.py: killing the group (os.killpg
    on the returned pid) stops all of it, and the guard kills it if this process dies."""
    return subprocess.Popen([sys.executable, "-I", "-S", str(GUARD), str(os.getpid()), *cmd],
                            start_new_session=True, **popen)


class Converter(Protocol):
    """DOCX in, PDF out. What the pipeline needs of a converter, and all it may use."""

    def convert(self, docx: list[Path], out_dir: Path, destinations: bool = False) -> list[Path]:
        """Convert the DOCX files to PDFs in out_dir (one call, one process); destinations: the
        documents' bookmarks become named destinations (service/combine.py). Raises Transient."""

    def stats(self) -> "ConverterStats": ...

    def abort(self) -> None:
        """Stop every running conversion (shutdown past its deadline)."""

    def close(self) -> None:
        """Stop whatever the converter keeps running (at the end of a run)."""


@dataclass(frozen=True)
class ConverterStats:
    running: int  # processes running now
    started: int  # processes started so far
    kills: int  # processes killed so far (hung, crashed, or aborted)


@dataclass
class _Slot:
    index: int
    profile: Path
    bridge: subprocess.Popen | None = None


def libreoffice(soffice: str, work_dir: Path, slots: int, timeout: float, mode: str = "auto",
                python: str = "/usr/bin/python3") -> Converter:
    """The LibreOffice converter for a mode: warm, cold, or auto (warm where `python` has uno)."""
    if shutil.which(soffice) is None:
        raise ConfigError("RELIEFDOCS_SOFFICE", f"LibreOffice executable '{soffice}' not found")
    if mode == "cold":
        return ColdLibreOffice(soffice, work_dir, slots, timeout)
    ok = shutil.which(python) is not None and subprocess.run(
        [python, "-c", "import uno"], capture_output=True, timeout=30).returncode == 0
    if ok:
        return WarmLibreOffice(soffice, work_dir, slots, timeout, python)
    if mode == "warm":
        raise ConfigError("RELIEFDOCS_LIBREOFFICE_MODE", f"warm mode needs LibreOffice's uno module for "
                                                         f"{python} (Debian: python3-uno)")
    log.warning("python3-uno not found: converting with one LibreOffice start per batch (cold mode)")
    return ColdLibreOffice(soffice, work_dir, slots, timeout)


class _LibreOffice:
    """What both kinds share: `slots` profiles used one conversion at a time, the output
    check, and killing a process group."""

    def __init__(self, soffice: str, work_dir: Path, slots: int, timeout: float):
        self.soffice = soffice
        self.timeout = timeout
        self.work_dir = Path(work_dir)
        self._slots: queue.Queue[_Slot] = queue.Queue()
        self._all: list[_Slot] = []
        for i in range(slots):
            slot = _Slot(i, self.work_dir / f"lo-profile-{os.getpid()}-{i}")
            self._slots.put(slot)
            self._all.append(slot)
        self._started = 0
        self._kills = 0
        self._running: set[subprocess.Popen] = set()

    def stats(self) -> ConverterStats:
        running = len(self._running) + sum(1 for s in self._all if s.bridge is not None and s.bridge.poll() is None)
        return ConverterStats(running, self._started, self._kills)

    @contextmanager
    def _slot(self):
        slot = self._slots.get()
        try:
            yield slot
        finally:
            self._slots.put(slot)

    def convert(self, docx: list[Path], out_dir: Path, destinations: bool = False) -> list[Path]:
        """Convert the given DOCX files to PDF in out_dir, in one LibreOffice process.
        destinations: the documents' bookmarks become named destinations (service/combine.py)."""
        out_dir.mkdir(parents=True, exist_ok=True)
        expected = [out_dir / (p.stem + ".pdf") for p in docx]
        for p in expected:
            p.unlink(missing_ok=True)
        with self._slot() as slot:
            self._convert(slot, docx, out_dir, destinations)
        missing = [p.name for p in expected if not p.is_file() or p.stat().st_size == 0]
        if missing:
            raise Transient("libreoffice", f"LibreOffice produced no PDF for {', '.join(missing)}")
        return expected

    def _convert(self, slot: _Slot, docx: list[Path], out_dir: Path, destinations: bool) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        for proc in list(self._running):
            self._kill(proc)
        for slot in self._all:
            self._reset(slot)

    def close(self) -> None:
        pass

    def _reset(self, slot: _Slot) -> None:
        if slot.bridge is not None:
            self._kill(slot.bridge)
            slot.bridge = None

    def _kill(self, proc: subprocess.Popen) -> None:
        self._kills += 1
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


class ColdLibreOffice(_LibreOffice):
    """One `soffice --convert-to pdf` per call."""

    def _convert(self, slot: _Slot, docx: list[Path], out_dir: Path, destinations: bool) -> None:
        target = "pdf:writer_pdf_Export"
        if destinations:  # filter options as JSON: LibreOffice 7.4 and later
            target += ':{"ExportBookmarksToPDFDestination":{"type":"boolean","value":"true"}}'
        cmd = [self.soffice, f"-env:UserInstallation=file://{slot.profile}", "--headless", "--norestore",
               "--nolockcheck", "--convert-to", target, "--outdir", str(out_dir), *map(str, docx)]
        env = {**os.environ, "HOME": str(slot.profile), "SAL_USE_VCLPLUGIN": "svp"}
        started = time.monotonic()
        proc = guarded(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        self._started += 1
        self._running.add(proc)
        try:
            proc.communicate(timeout=self.timeout)
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

class WarmLibreOffice(_LibreOffice):
    """A LibreOffice kept running per slot, driven over UNO by service/lo_bridge.py."""

    def __init__(self, soffice: str, work_dir: Path, slots: int, timeout: float, python: str):
        super().__init__(soffice, work_dir, slots, timeout)
        self.python = python

    def _convert(self, slot: _Slot, docx: list[Path], out_dir: Path, destinations: bool) -> None:
        deadline = time.monotonic() + self.timeout
        if slot.bridge is None or slot.bridge.poll() is not None:
            self._start_bridge(slot, deadline)
        request = json.dumps({"docx": [str(p) for p in docx], "outdir": str(out_dir),
                              "destinations": destinations}) + "\n"
        try:
            slot.bridge.stdin.write(request.encode())
            slot.bridge.stdin.flush()
        except OSError:
            self._reset(slot)
            raise Transient("libreoffice", "LibreOffice bridge died before the request") from None
        answer = self._read(slot, deadline, f"conversion of {len(docx)} documents")
        if not answer.get("ok"):
            self._reset(slot)  # a document that failed may have left LibreOffice in a bad state
            raise Transient("libreoffice", f"conversion failed: {answer.get('error', '?')[:200]}")

    def _start_bridge(self, slot: _Slot, deadline: float) -> None:
        slot.profile.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "HOME": str(slot.profile), "SAL_USE_VCLPLUGIN": "svp"}
        pipe = f"reliefdocs-{os.getpid()}-{slot.index}-{self._started}"
        slot.bridge = guarded([self.python, str(BRIDGE), self.soffice, str(slot.profile), pipe],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
        self._started += 1
        ready = self._read(slot, min(deadline, time.monotonic() + 120), "LibreOffice start")
        if not ready.get("ready"):
            self._reset(slot)
            raise Transient("libreoffice", f"LibreOffice did not start: {ready.get('error', '?')}")
        log.info("LibreOffice started", extra={"slot": slot.index, "pid": ready.get("pid")})

    def _read(self, slot: _Slot, deadline: float, what: str) -> dict:
        out = slot.bridge.stdout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._reset(slot)
                raise Transient("libreoffice", f"{what} timed out after {self.timeout:.0f} s; process killed")
            ready, _, _ = select.select([out], [], [], remaining)
            if ready:
                line = out.readline()
                if not line:
                    code = slot.bridge.poll()
                    self._reset(slot)
                    raise Transient("libreoffice", f"LibreOffice exited {code} during {what}")
                try:
                    return json.loads(line)
                except ValueError:
                    continue  # not ours (a library printing to stdout)

    def close(self) -> None:
        """Stop the warm LibreOffice processes (at the end of a run)."""
        for slot in self._all:
            if slot.bridge is not None and slot.bridge.poll() is None:
                try:
                    slot.bridge.stdin.close()
                    slot.bridge.wait(timeout=10)
                except (OSError, subprocess.TimeoutExpired):
                    pass
            if slot.bridge is not None:
                try:
                    os.killpg(slot.bridge.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                slot.bridge = None

