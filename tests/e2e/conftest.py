"""End-to-end fixtures: a real Kafka-protocol broker (tansu), a real object store (SeaweedFS,
data on disk) and real LibreOffice, started once per test session as processes on loopback.
Each test gets its own topics, consumer group and bucket, so tests never see each other's records."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.structs import TopicPartition

from tools import devstack

ROOT = Path(__file__).resolve().parents[2]
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
        self.decisions = f"decided-{self.name}"
        self.notifications = f"ready-{self.name}"
        self.dlq = f"dlq-{self.name}"
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
                "RELIEFDOCS_DLQ_TOPIC": self.dlq, "RELIEFDOCS_GROUP": f"g-{self.name}",
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
        out = open(self.tmp / f"{log}.log", "ab")
        return subprocess.Popen([EXE, "worker", *args], env={**self.env, **env}, stderr=out, stdout=out)

    def run_worker(self, idle: float = 2, timeout: float = 240, **env) -> int:
        proc = self.worker("--exit-when-idle", str(idle), **env)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            raise

    def log(self, name: str = "worker") -> str:
        return (self.tmp / f"{name}.log").read_text(encoding="utf-8")

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
        tps = [TopicPartition(topic, p) for p in range(self.partitions)]
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
    return Env(broker, s3, tmp_path)


def pdf_text(data: bytes, tmp: Path) -> str:
    p = tmp / f"{uuid.uuid4().hex}.pdf"
    p.write_bytes(data)
    return subprocess.run(["pdftotext", "-raw", str(p), "-"], capture_output=True, check=True, text=True).stdout


def wait_for(predicate, timeout: float = 120, every: float = 0.5):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("condition not met in time")
