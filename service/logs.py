"""Structured logs: one JSON object per line on stderr.

Log calls pass identifiers only (decision ids, court, batch, bundle ids, offsets, counts,
error codes) through `extra`; personal data (names, dates of birth, CII numbers) is never
passed to a logger. Anything a library logs at WARNING or above goes through the same
formatter.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import traceback

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        for k, v in record.__dict__.items():
            if k not in _STANDARD and not k.startswith("_"):
                out[k] = v
        if record.exc_info and record.exc_info[0] is not None:
            # The type and where it happened; never the message, which may quote a value.
            out["exception"] = record.exc_info[0].__name__
            out["traceback"] = [f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} {f.name}"
                                for f in traceback.extract_tb(record.exc_info[2])][-8:]
        return json.dumps(out, ensure_ascii=False, default=str)


def setup(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("reliefdocs").setLevel(level)
    # kafka-python logs every failed connection attempt; the worker reports outages itself
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    if level == "DEBUG":  # the group protocol (joins, syncs, rebalances) is what a stuck member shows
        logging.getLogger("kafka.coordinator").setLevel(logging.INFO)
