"""Stage 6 (edge): object storage. S3 (any S3 API) or a local folder, behind one small interface.

Objects are written whole: a folder write goes through a temporary file and a rename; an S3
write is a single PUT (multipart above 64 MiB) with a SHA-256 checksum the server verifies.
Failures of the store are Transient: the caller retries them, nothing is dropped.
"""

from __future__ import annotations

import base64
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Iterator, Protocol
from urllib.parse import urlparse

from service.errors import ConfigError, Transient


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Store(Protocol):
    def put_file(self, key: str, path: str | Path, media_type: str, sha256: str) -> None: ...

    def put_bytes(self, key: str, data: bytes, media_type: str) -> None: ...

    def get(self, key: str) -> bytes | None: ...

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str) -> Iterator[str]: ...

    def uri(self, key: str) -> str: ...

    def check(self) -> None: ...


class FileStore:
    def __init__(self, url: str):
        self.root = Path(urlparse(url).path)

    def _path(self, key: str) -> Path:
        p = (self.root / key).resolve()
        if self.root.resolve() not in p.parents:
            raise ValueError("key escapes the storage root")
        return p

    def _write(self, key: str, write) -> None:
        dest = self._path(key)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, dest)
        except OSError as exc:
            raise Transient("storage", f"writing {key}: {exc.strerror}") from exc

    def put_file(self, key: str, path: str | Path, media_type: str, sha256: str) -> None:
        def write(f):
            with open(path, "rb") as src:
                while chunk := src.read(1 << 20):
                    f.write(chunk)

        self._write(key, write)

    def put_bytes(self, key: str, data: bytes, media_type: str) -> None:
        self._write(key, lambda f: f.write(data))

    def get(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str) -> Iterator[str]:
        base = self.root / prefix
        if not base.exists():
            return
        for p in sorted(base.rglob("*")):
            if p.is_file() and not p.name.startswith(".tmp-"):
                yield str(p.relative_to(self.root))

    def uri(self, key: str) -> str:
        return "file://" + str(self.root / key)

    def check(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError("RELIEFDOCS_STORAGE_URL", f"cannot create {self.root}: {exc.strerror}") from None


class S3Store:
    MULTIPART_THRESHOLD = 64 * 1024 * 1024

    def __init__(self, url: str, sse: str = "AES256", kms_key_id: str | None = None,
                 checksum_when_required: bool = False, lock_mode: str | None = None, lock_days: int | None = None):
        import boto3
        from botocore.config import Config

        u = urlparse(url)
        self.bucket = u.netloc
        self.prefix = u.path.strip("/")
        self.checksums = not checksum_when_required
        cfg = dict(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=10, read_timeout=60)
        if checksum_when_required:
            cfg.update(request_checksum_calculation="when_required", response_checksum_validation="when_required")
        # The contract names AWS_REGION; boto3 itself reads AWS_DEFAULT_REGION.
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        self.client = boto3.client("s3", config=Config(**cfg), region_name=region)
        self.extra: dict[str, str] = {}
        if sse == "AES256":
            self.extra["ServerSideEncryption"] = "AES256"
        elif sse == "aws:kms":
            self.extra.update(ServerSideEncryption="aws:kms", SSEKMSKeyId=kms_key_id or "")
        self.lock = (lock_mode, lock_days) if lock_mode and lock_days else None

    def _args(self, key: str, media_type: str) -> dict:
        args = dict(Bucket=self.bucket, Key=self._key(key), ContentType=media_type, **self.extra)
        if self.lock and not key.startswith("_ledger/"):
            import datetime as dt

            args.update(ObjectLockMode=self.lock[0], ObjectLockRetainUntilDate=dt.datetime.now(dt.timezone.utc)
                        + dt.timedelta(days=self.lock[1]))
        return args

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _fail(self, what: str, exc: Exception) -> Transient:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
        return Transient("s3", f"{what}: {code}")

    def put_file(self, key: str, path: str | Path, media_type: str, sha256: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        args = self._args(key, media_type)
        try:
            if os.path.getsize(path) > self.MULTIPART_THRESHOLD:
                from boto3.s3.transfer import TransferConfig

                extra = {k: v for k, v in args.items() if k not in ("Bucket", "Key")}
                extra["Metadata"] = {"sha256": sha256}
                self.client.upload_file(str(path), self.bucket, self._key(key), ExtraArgs=extra,
                                        Config=TransferConfig(multipart_threshold=self.MULTIPART_THRESHOLD))
                return
            if self.checksums:
                args.update(ChecksumAlgorithm="SHA256", ChecksumSHA256=base64.b64encode(bytes.fromhex(sha256)).decode())
            with open(path, "rb") as body:
                self.client.put_object(Body=body, Metadata={"sha256": sha256}, **args)
        except (BotoCoreError, ClientError) as exc:
            raise self._fail(f"put {key}", exc) from exc

    def put_bytes(self, key: str, data: bytes, media_type: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        args = dict(self._args(key, media_type), Body=data)
        if self.checksums:
            args.update(ChecksumAlgorithm="SHA256",
                        ChecksumSHA256=base64.b64encode(hashlib.sha256(data).digest()).decode())
        try:
            self.client.put_object(**args)
        except (BotoCoreError, ClientError) as exc:
            raise self._fail(f"put {key}", exc) from exc

    def get(self, key: str) -> bytes | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise self._fail(f"get {key}", exc) from exc
        except BotoCoreError as exc:
            raise self._fail(f"get {key}", exc) from exc

    def exists(self, key: str) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                return False
            raise self._fail(f"head {key}", exc) from exc
        except BotoCoreError as exc:
            raise self._fail(f"head {key}", exc) from exc

    def list(self, prefix: str) -> Iterator[str]:
        from botocore.exceptions import BotoCoreError, ClientError

        strip = len(self.prefix) + 1 if self.prefix else 0
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
                for obj in page.get("Contents", []):
                    yield obj["Key"][strip:]
        except (BotoCoreError, ClientError) as exc:
            raise self._fail(f"list {prefix}", exc) from exc

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def check(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            # A one-key listing under our prefix, not HeadBucket: it needs only the prefix-scoped
            # s3:ListBucket a least-privilege policy grants (deploy/iam/).
            self.client.list_objects_v2(Bucket=self.bucket, Prefix=self._key(""), MaxKeys=1)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in ("404", "NoSuchBucket"):
                raise ConfigError("RELIEFDOCS_STORAGE_URL", f"bucket {self.bucket} does not exist") from None
            if code in ("403", "AccessDenied"):
                raise ConfigError("RELIEFDOCS_STORAGE_URL", f"access to bucket {self.bucket} is denied") from None
            raise self._fail("head bucket", exc) from exc
        except BotoCoreError as exc:
            raise self._fail("head bucket", exc) from exc


def open_store(settings) -> Store:
    """The store a Settings object names (RELIEFDOCS_STORAGE_URL and the S3 settings)."""
    url = settings.storage_url
    if url.startswith("file://"):
        return FileStore(url)
    return S3Store(url, sse=settings.s3_sse, kms_key_id=settings.s3_kms_key_id,
                   checksum_when_required=settings.s3_checksum_when_required,
                   lock_mode=settings.s3_object_lock_mode, lock_days=settings.s3_object_lock_days)
