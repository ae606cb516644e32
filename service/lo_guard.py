"""Nothing of LibreOffice outlives its worker.

service/convert.py starts every LibreOffice command (the warm bridge, or a cold
`soffice --convert-to`) as `python -I -S lo_guard.py WORKER_PID COMMAND...`, in a new
session: the guard leads a process group that holds the command and everything it starts
(soffice's oosplash forks soffice.bin, which stays in the group). The guard runs the command
with its own stdin, stdout and stderr, lets go of them, waits for it and ends as it ended
(same exit code, or same signal), after killing whatever the command left in the group. If
the worker dies first, whatever killed it (SIGKILL included), the guard kills its whole group
within POLL_SECONDS. (Both are needed: a worker's death closes the warm bridge's stdin, and the
bridge may exit before the guard sees the worker gone; a chaos run found soffice.bin left that
way, its guard and bridge already ended.)

Why not PR_SET_PDEATHSIG alone: a forked child does not inherit it (soffice.bin would
survive), and it fires when the *thread* that forked exits, while the worker starts
LibreOffice from filing threads that come and go. The guard, single-threaded, sets it on its
own child, so that a guard killed on its own takes the command with it.

Standard library only (run with -I -S, by whichever Python runs the worker).
"""

import ctypes
import os
import resource
import signal
import subprocess
import sys

PR_SET_PDEATHSIG = 1
POLL_SECONDS = 0.2


def _in_child() -> None:
    """Before exec, in the command's process: SIGCHLD as usual, and SIGKILL if the guard dies."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: the group kill below still works


def _kill_group() -> None:
    os.killpg(0, signal.SIGKILL)  # the guard leads the group: this ends it too


def _kill_the_rest() -> None:
    """The command ended: whatever it left in the group (LibreOffice's soffice.bin, after a warm
    bridge that exited when the worker's pipe closed) goes with it. The guard itself stays, to
    end as the command ended."""
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            if os.getpgid(int(entry)) == me:
                os.kill(int(entry), signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _let_go_of_pipes() -> None:
    """The command holds the pipes now: the worker reads EOF as soon as the command ends."""
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)


def _end_as(code: int) -> int:
    if code < 0:  # killed by a signal: so is the guard, so the worker sees the same end
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crash's core is LibreOffice's, not the guard's
        if -code not in (signal.SIGKILL, signal.SIGSTOP):
            signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    return code


def main(argv: list[str]) -> int:
    worker, command = int(argv[1]), argv[2:]
    if os.getpgrp() != os.getpid():
        print("lo_guard.py must lead its own process group (start it in a new session)", file=sys.stderr)
        return 2
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})  # wait for it with sigtimedwait
    if os.getppid() != worker:
        _kill_group()  # the worker died before the guard started
    child = subprocess.Popen(command, preexec_fn=_in_child)
    _let_go_of_pipes()
    while True:
        signal.sigtimedwait({signal.SIGCHLD}, POLL_SECONDS)
        code = child.poll()
        if code is not None:
            _kill_the_rest()
            return _end_as(code)
        if os.getppid() != worker:  # orphaned: the worker is gone
            _kill_group()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
