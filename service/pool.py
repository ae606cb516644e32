"""Work done on worker threads while the consumer keeps polling: sealed batches queued on the
work topic (the composer's side), work items filed (the filer's side).

At most `size` batches are filed at once (one more than the LibreOffice processes: while one
batch is rendered, merged or stored in Python, the others' documents convert, 6 % faster at
15,000 decisions in `make bench`); more wait for a slot. Results go back to the consumer's
thread through `concurrent.futures.Future`s that `done()` hands over. The threads are daemons:
a flush abandoned at shutdown never keeps the process alive.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import Any, Callable

from service.batching import SealedBatch


class FilingPool:
    def __init__(self, size: int, file: Callable[[Any], Any],
                 name: Callable[[Any], str] = lambda sb: f"flush-{sb.court_code}-{sb.volume}"):
        self.file = file
        self.name = name
        self.slots = threading.Semaphore(size)
        self.inflight: dict[Future, SealedBatch] = {}

    def submit(self, sb: SealedBatch) -> None:
        fut: Future = Future()
        self.inflight[fut] = sb

        def run() -> None:
            with self.slots:
                if not fut.set_running_or_notify_cancel():
                    return
                try:
                    fut.set_result(self.file(sb))
                except BaseException as exc:  # handed to the consumer's thread by done()
                    fut.set_exception(exc)

        threading.Thread(target=run, name=self.name(sb), daemon=True).start()

    def done(self) -> list[tuple[SealedBatch, Future]]:
        """The batches whose filing ended (filed or failed) since the last call."""
        finished = [f for f in self.inflight if f.done()]
        return [(self.inflight.pop(f), f) for f in finished]

    def busy(self, partitions: set[int]) -> bool:
        return any(sb.partition in partitions for sb in self.inflight.values())

    def batches(self) -> list[SealedBatch]:
        return list(self.inflight.values())

    def __len__(self) -> int:
        return len(self.inflight)
