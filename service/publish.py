"""`reliefdocs publish FILE.jsonl`: publish CloudEvents, one JSON object per line, each with
the right key (the court code), in structured mode (or binary mode with --binary).

The whole file is read and checked first (JSON, a known event type, a court code to key by):
a bad line stops the command before anything is sent, naming the line, not its content.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from service import broker, events
from service.config import Settings


class BadLine(Exception):
    pass


def key_of(event: dict[str, Any]) -> str:
    data = event.get("data") or {}
    if event.get("type") == events.DECIDED:
        return data["court"]["code"]
    if event.get("type") == events.BATCH_CLOSED:
        return data["court_code"]
    raise KeyError("type")


def read(path: Path) -> list[tuple[str, dict[str, Any]]]:
    out = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
                out.append((key_of(event), event))
            except json.JSONDecodeError:
                raise BadLine(f"{path}:{n}: not JSON") from None
            except (KeyError, TypeError, AttributeError):
                raise BadLine(f"{path}:{n}: not a {events.DECIDED} or {events.BATCH_CLOSED} "
                              f"CloudEvent with a court code") from None
    return out


def encode(event: dict[str, Any], binary: bool) -> tuple[bytes, list[tuple[str, bytes]]]:
    if not binary:
        return (json.dumps(event, ensure_ascii=False).encode("utf-8"),
                [("content-type", b"application/cloudevents+json")])
    headers = [(f"ce_{k}", str(v).encode("utf-8")) for k, v in event.items() if k not in ("data", "datacontenttype")]
    headers.append(("content-type", b"application/json"))
    return json.dumps(event["data"], ensure_ascii=False).encode("utf-8"), headers


def publish(settings: Settings, path: Path, binary: bool = False, out=sys.stdout) -> int:
    items = read(path)
    broker.ensure_topics(settings, {settings.decisions_topic: 3})
    prod = broker.producer(settings)
    futures = []
    for key, event in items:
        value, headers = encode(event, binary)
        futures.append(prod.send(settings.decisions_topic, key=key.encode("utf-8"), value=value, headers=headers))
    prod.flush()
    for f in futures:
        f.get(timeout=60)
    prod.close()
    kinds: dict[str, int] = {}
    for _, e in items:
        kinds[e["type"]] = kinds.get(e["type"], 0) + 1
    print(f"published {len(items)} events to {settings.decisions_topic}: "
          + ", ".join(f"{n} {t}" for t, n in sorted(kinds.items())), file=out)
    return 0
