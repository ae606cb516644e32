"""The processes a process started, found from its pid (Linux /proc), never by a name pattern:
tests and the benchmark signal and measure only processes they started."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass


@dataclass(frozen=True)
class Proc:
    pid: int
    name: str  # the kernel's comm, e.g. soffice.bin
    start: int  # start time in clock ticks since boot: with pid, names one process even if the pid is reused


def stat(pid: int) -> tuple[str, str, int] | None:
    """(comm, state, start time) of a process, or None if there is none with that pid."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    comm = text[text.index("(") + 1:text.rindex(")")]
    fields = text[text.rindex(")") + 2:].split()
    return comm, fields[0], int(fields[19])


def children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out.extend(int(c) for c in f.read().split())
        except OSError:
            pass  # the thread or the process ended meanwhile
    return out


def descendants(pid: int) -> list[Proc]:
    """Every living process below pid (children, their children, ...)."""
    out: list[Proc] = []
    todo = children(pid)
    while todo:
        child = todo.pop()
        st = stat(child)
        if st is not None and st[1] != "Z":
            out.append(Proc(child, st[0], st[2]))
            todo.extend(children(child))
    return out


def alive(proc: Proc) -> bool:
    """True while that very process runs (a zombie waiting for its parent counts as gone)."""
    st = stat(proc.pid)
    return st is not None and st[1] != "Z" and st[2] == proc.start


def kill(proc: Proc, sig: int = signal.SIGKILL) -> bool:
    """Signal that very process if it still runs; True if it was signalled."""
    if not alive(proc):
        return False
    try:
        os.kill(proc.pid, sig)
    except ProcessLookupError:
        return False
    return True
