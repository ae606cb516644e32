"""End-to-end fixtures: a real Kafka-protocol broker (tansu), a real object store (SeaweedFS,
data on disk) and real LibreOffice, started once per test session as processes on loopback.
Each test gets its own topics, consumer group and bucket, so tests never see each other's records."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.structs import TopicPartition

from tests.helpers import ROOT, wait_for  # noqa: F401  (the e2e tests take them from here)
from tools import devstack

EXE = str(Path(sys.executable).parent / "reliefdocs")


def pytest_collection_modifyitems(items):
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def services(tmp_path_factory):
    if shutil.which("soffice") is None:
        pytest.fail("LibreOffice (soffice) is not installed: run `make test`, which installs it")
    logs = tmp_path_factory.mktemp("services")
    broker = devstack.Broker(log=logs / "broker.log").start()
    s3 = devstack.S3(folder=logs / "s3", log=logs / "s3.log").start()
    yield broker, s3
    broker.stop()
    s3.stop()


@dataclass
class Env:
    """One test's world: its topics, group, bucket, and helpers to drive and inspect them."""

    broker: devstack.Broker
    s3: devstack.S3
    tmp: Path
    name: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    partitions: int = 3
    settings: dict = field(default_factory=dict)

    def __post_init__(self):
        self.started: list[subprocess.Popen] = []  # every worker this test started, stopped by stop()
        self.decisions = f"decided-{self.name}"
        self.notifications = f"ready-{self.name}"
        self.dlq = f"dlq-{self.name}"
        self.work = f"work-{self.name}"  # created by the first worker (RELIEFDOCS_WORK_PARTITIONS)
        self.bucket = f"b-{self.name}"
        self.s3.create_bucket(self.bucket)
        admin = KafkaAdminClient(bootstrap_servers=self.broker.bootstrap)
        admin.create_topics([NewTopic(t, self.partitions, 1) for t in (self.decisions, self.notifications, self.dlq)])
        admin.close()
        self.s3client = self.s3.client()

    @property
    def env(self) -> dict:
        return {**os.environ, **self.s3.env(),
                "RELIEFDOCS_KAFKA_BOOTSTRAP_SERVERS": self.broker.bootstrap,
                "RELIEFDOCS_DECISIONS_TOPIC": self.decisions, "RELIEFDOCS_NOTIFICATIONS_TOPIC": self.notifications,
                "RELIEFDOCS_DLQ_TOPIC": self.dlq, "RELIEFDOCS_WORK_TOPIC": self.work,
                "RELIEFDOCS_GROUP": f"g-{self.name}",
                "RELIEFDOCS_STORAGE_URL": f"s3://{self.bucket}/filings",
                "RELIEFDOCS_KAFKA_SESSION_TIMEOUT_MS": "6000", "RELIEFDOCS_KAFKA_HEARTBEAT_INTERVAL_MS": "1000",
                "RELIEFDOCS_WORK_DIR": str(self.tmp / "work"), "RELIEFDOCS_LOG_LEVEL": "DEBUG",
                **self.settings}

    # -- driving -------------------------------------------------------------------------
    def publish(self, items: list, binary: bool = False) -> None:
        """items: CloudEvent dicts (keyed by their court), or (key, value_bytes[, headers]) tuples."""
        from service.publish import encode, key_of

        prod = KafkaProducer(bootstrap_servers=self.broker.bootstrap, acks="all")
        for item in items:
            if isinstance(item, dict):
                value, headers = encode(item, binary)
                prod.send(self.decisions, key=key_of(item).encode(), value=value, headers=headers)
            else:
                key, value, *rest = item
                prod.send(self.decisions, key=key, value=value, headers=rest[0] if rest else [])
        prod.flush()
        prod.close()

    def worker(self, *args: str, log: str = "worker", **env) -> subprocess.Popen:
        with open(self.tmp / f"{log}.log", "ab") as out:
            proc = subprocess.Popen([EXE, "worker", *args], env={**self.env, **env}, stderr=out, stdout=out)
        self.started.append(proc)
        return proc

    def run_worker(self, idle: float = 2, timeout: float = 240, **env) -> int:
        return self.worker("--exit-when-idle", str(idle), **env).wait(timeout=timeout)

    def stop(self) -> list[int]:
        """SIGKILL (by pid) and reap every worker this test started that still runs; their pids.
        The teardown of `world` calls it, so an assertion or a timeout leaves no worker behind."""
        left = [p for p in self.started if p.poll() is None]
        for p in left:
            p.send_signal(signal.SIGKILL)
        for p in left:
            p.wait(timeout=30)
        return [p.pid for p in left]

    def kill_at_moments(self, parts: list[list], moments: tuple[str, ...], workers: int, rng) -> list[str]:
        """The chaos tests' loop: `workers` workers; after publishing each part, the worker that
        next logs a moment drawn (by `rng`) from `moments` is SIGKILLed and started again. Then
        all are killed and as many run until idle, which must exit 0. What was killed, in order."""
        procs = [self.worker(log=f"w{i}") for i in range(workers)]
        done: list[str] = []
        for n, (part, moment) in enumerate(zip(parts, [rng.choice(moments) for _ in parts])):
            seen = [len(self.logged(moment, f"w{i}")) for i in range(workers)]
            self.publish(part)
            victim = int(wait_for(lambda: next((str(i) for i in range(workers)
                                                if len(self.logged(moment, f"w{i}")) > seen[i]), None),
                                  timeout=180, every=0.1, what=f"kill {n + 1}: a worker logging {moment!r}"))
            procs[victim].send_signal(signal.SIGKILL)
            procs[victim].wait()
            done.append(f"w{victim} after {moment!r}")
            procs[victim] = self.worker(log=f"w{victim}")
        for p in procs:
            p.send_signal(signal.SIGKILL)
            p.wait()
        finals = [self.worker("--exit-when-idle", "4", log=f"final{i}") for i in range(workers)]
        rcs = [p.wait(timeout=300) for p in finals]
        assert rcs == [0] * workers, (done, "\n".join(self.log(f"final{i}")[-3000:] for i in range(workers)))
        return done

    def log(self, name: str = "worker") -> str:
        path = self.tmp / f"{name}.log"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    def entries(self, name: str = "worker") -> list[dict]:
        """The JSON log lines of worker log `name`, in order."""
        out = []
        for line in self.log(name).splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a line a child process (LibreOffice) wrote
            if isinstance(entry, dict):
                out.append(entry)
        return out

    def logged(self, event: str, name: str = "worker") -> list[dict]:
        """The JSON log lines of worker log `name` whose "event" is `event`."""
        return [e for e in self.entries(name) if e.get("event") == event]

    # -- inspecting ----------------------------------------------------------------------
    def keys(self, prefix: str = "filings/") -> list[str]:
        pages = self.s3client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return [o["Key"] for p in pages for o in p.get("Contents", [])]

    def get(self, key: str) -> bytes:
        return self.s3client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def manifests(self) -> list[dict]:
        return [json.loads(self.get(k)) for k in self.keys() if k.endswith("/manifest.json")]

    def records(self, topic: str) -> list:
        c = KafkaConsumer(bootstrap_servers=self.broker.bootstrap, enable_auto_commit=False)
        tps = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic) or range(self.partitions))]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        out, quiet = [], 0
        while quiet < 3:
            batch = c.poll(timeout_ms=500)
            quiet = 0 if batch else quiet + 1
            for recs in batch.values():
                out.extend(recs)
        c.close()
        return out

    def work_markers(self) -> dict[str, str | None]:
        """The work markers under _work/ (service/ledger.py): key -> "sealed", "failed" or None
        (unreadable); the batch objects ({bundle_id}.batch.json) are not markers."""
        out = {}
        for key in self.keys("filings/_work/"):
            if key.endswith(".json") and not key.endswith(".batch.json"):
                try:
                    marker = json.loads(self.get(key))
                except ValueError:
                    marker = None
                out[key] = marker.get("state") if isinstance(marker, dict) else None
        return out

    def filed(self) -> dict[str, list[str]]:
        """decision_id -> bundle ids it is filed in, from the manifests in S3."""
        out: dict[str, list[str]] = {}
        for m in self.manifests():
            for d in m["decisions"]:
                out.setdefault(d["decision_id"], []).append(m["bundle_id"])
        return out


@pytest.fixture
def world(services, tmp_path):
    broker, s3 = services
    env = Env(broker, s3, tmp_path)
    yield env
    env.stop()


def pdf_text(data: bytes, tmp: Path) -> str:
    p = tmp / f"{uuid.uuid4().hex}.pdf"
    p.write_bytes(data)
    return subprocess.run(["pdftotext", "-raw", str(p), "-"], capture_output=True, check=True, text=True).stdout


def granted(sent) -> set[str]:
    """The decision ids among the events `sent` that the worker files (not the refused ones)."""
    return {e["data"]["decision_id"] for e in sent if e["type"].endswith("decided.v1")
            and e["data"]["relief"] not in ("not_eligible", "review_required")}


def assert_exactly_once(world: Env, sent) -> None:
    """Every granted decision of `sent` in exactly one stored bundle, nothing else filed, and
    every stored bundle notified (again after a crash between storing and committing: a set).
    Checked from outside: the S3 manifests and the notification topic."""
    filed = world.filed()
    missing = granted(sent) - set(filed)
    doubled = {k: v for k, v in filed.items() if len(v) > 1}
    assert not missing, f"{len(missing)} granted decisions not filed"
    assert not doubled, f"{len(doubled)} decisions in two bundles"
    assert set(filed) == granted(sent)
    bundles = {m["bundle_id"] for m in world.manifests()}
    notes = [json.loads(r.value)["id"] for r in world.records(world.notifications)]
    assert set(notes) == bundles


def scrape(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except urllib.error.URLError:
        return 0, ""  # not listening yet


def metric(text: str, name: str, **labels) -> float:
    """Sum of a metric's samples whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        m = re.match(rf"{name}(\{{[^}}]*\}})? (\S+)$", line)
        if m and all(f'{k}="{v}"' in (m.group(1) or "") for k, v in labels.items()):
            total += float(m.group(2))
    return total
