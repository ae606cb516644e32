"""service/lo_guard.py with plain commands instead of LibreOffice: it ends as its command
ends, passes the pipes through, and kills the whole group when the process that started it
dies (SIGKILL included)."""

from __future__ import annotations

import signal
import subprocess
import sys

from service.convert import GUARD, guarded
from tests.helpers import ROOT, wait_for
from tools import proctree


def test_the_guard_ends_as_its_command_ends():
    assert guarded(["sh", "-c", "exit 3"]).wait(timeout=30) == 3
    assert guarded(["sh", "-c", "kill -9 $$"]).wait(timeout=30) == -signal.SIGKILL
    assert guarded(["sh", "-c", "kill -SEGV $$"]).wait(timeout=30) == -signal.SIGSEGV


def test_the_command_has_the_pipes():
    proc = guarded(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.communicate(b"one line\n", timeout=30) == (b"one line\n", None)
    assert proc.returncode == 0


def test_the_guard_must_lead_its_group():
    proc = subprocess.run([sys.executable, "-I", "-S", str(GUARD), "1", "true"], capture_output=True, timeout=30)
    assert proc.returncode == 2 and b"process group" in proc.stderr


def test_the_group_dies_with_the_process_that_started_it():
    # a stand-in worker: starts a guarded command that forks (as soffice forks soffice.bin), then waits
    code = ("import sys; from service.convert import guarded; "
            "guarded(['sh', '-c', 'sleep 300 & sleep 300']); print('started', flush=True); sys.stdin.read()")
    worker = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    started: list[proctree.Proc] = []
    try:
        assert worker.stdout.readline() == b"started\n"
        started = wait_for(lambda: both_sleeps(worker.pid), timeout=10, every=0.05,
                           what="the guarded command and its two sleeps running")
        worker.kill()
        worker.wait()
        wait_for(lambda: not any(proctree.alive(p) for p in started), timeout=10, every=0.05,
                 what="the guard, sh and both sleeps gone after their worker's SIGKILL")
    finally:
        worker.kill()
        worker.wait()
        for p in started:
            proctree.kill(p)


def both_sleeps(pid: int) -> list[proctree.Proc] | None:
    """pid's descendants (the guard, sh and its two sleeps) once both sleeps run."""
    found = proctree.descendants(pid)
    return found if sum(p.name == "sleep" for p in found) == 2 else None



def test_what_the_command_leaves_in_the_group_dies_when_it_ends():
    # a command that exits at once, leaving a child behind (a bridge that ended before its soffice.bin)
    proc = guarded(["sh", "-c", "sleep 300 & echo $!"], stdout=subprocess.PIPE)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0  # the guard still ends as its command ended
    left = int(out.split()[0])

    def gone() -> bool:
        st = proctree.stat(left)
        return st is None or st[1] == "Z"  # a zombie is dead (this machine's pid 1 does not reap)

    wait_for(gone, timeout=10, every=0.05, what="the command's leftover child to be killed")
