"""Stage 6 (edge): object storage. S3 (any S3 API) or a local folder, behind one small interface.

Objects are written whole: a folder write goes through a temporary file and a rename; an S3
write is a single PUT (multipart above 64 MiB) with a SHA-256 checksum the server verifies.

A bundle's objects and its manifest are derived from the batch alone (the same batch gives
the same bytes), so they are written `create_only`: with `If-None-Match: *` (a hard link on a
folder), the store refuses to overwrite. A second writer of the same bundle, refused, compares
the stored object's SHA-256 with its own: equal, the object is already there; different, it is
a Permanent error naming the object, never a silent overwrite. The ledger's entries are written
without it (a repair rewrites them). With RELIEFDOCS_S3_EXPECTED_BUCKET_OWNER every request
says which account must own the bucket (`ExpectedBucketOwner`).

Failures are classified as the AWS SDKs classify them (botocore's "standard" retry mode):
throttling, 5xx answers, timeouts and broken connections are Transient (the caller retries
them, nothing is dropped); any other refusal (AccessDenied, KeyTooLongError, a disabled KMS
key, NoSuchBucket, ...) is Permanent: asking again cannot change it, so the caller gives up on
the batch (it is dead-lettered as `store_failed`). A folder store does the same with errno.
Messages name the operation, the object's name and the error code, never a record's value.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Iterator, Protocol
from urllib.parse import urlparse

from service.errors import ConfigError, Permanent, Transient

MAX_KEY_BYTES = 1024  # S3's limit on an object key, in UTF-8 bytes
MAX_PREFIX_BYTES = 512  # the rest of a key is at most ~330 bytes (service/flush.py folder_of)

# Error codes an S3 API answers for a condition that passes. botocore keeps these lists as
# private class attributes of botocore/retries/standard.py (TransientRetryableChecker,
# ThrottledRetryableChecker, and the 429 of its throttling-status checker), so they are
# copied here (botocore 1.44), plus S3's own
# OperationAborted ("a conflicting conditional operation is in progress; try again") and the
# clock-skew codes the AWS SDKs retry after correcting the clock (RequestTimeTooSkewed).
THROTTLING_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
    "TooManyRequestsException", "ProvisionedThroughputExceededException", "TransactionInProgressException",
    "RequestLimitExceeded", "BandwidthLimitExceeded", "LimitExceededException", "RequestThrottled", "SlowDown",
    "PriorRequestNotComplete", "EC2ThrottledException", "KMS.ThrottlingException"})
TRANSIENT_CODES = frozenset({
    "RequestTimeout", "RequestTimeoutException", "PriorRequestNotComplete", "InternalError", "ServiceUnavailable",
    "OperationAborted", "RequestTimeTooSkewed", "KMS.KMSInternalException", "KMS.DependencyTimeoutException",
    "ConditionalRequestConflict"})  # 409: a conditional write of the same key is in flight; S3 says retry
OTHER_CONTENT = "PreconditionFailed: an object with another SHA-256 is stored there"
TRANSIENT_STATUS = frozenset({500, 502, 503, 504, 429})  # botocore: 500, 502, 503, 504; 429 is throttling

# errno values of a folder store that pass, or that an operator clears without touching the
# batch: a full disk (ENOSPC, EDQUOT) is an outage of the store like S3's 503, and dead-lettering
# every batch until space is freed would empty the queue into the DLQ. Any errno not listed
# here or in PERMANENT_ERRNO is treated as transient too (never drop on an unknown).
TRANSIENT_ERRNO = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EAGAIN, errno.EINTR, errno.EBUSY,
                             errno.ETIMEDOUT, errno.ESTALE, errno.ENOMEM, errno.EMFILE, errno.ENFILE})
PERMANENT_ERRNO = frozenset({errno.ENAMETOOLONG, errno.EACCES, errno.EPERM, errno.EROFS, errno.EINVAL,
                             errno.ENOTDIR, errno.EISDIR, errno.ELOOP, errno.EFBIG, errno.EILSEQ})


def safe_key(key: str) -> bool:
    """No empty, `.` or `..` segment and no NUL: the key names exactly the folder it spells."""
    return "\0" not in key and all(seg not in ("", ".", "..") for seg in key.split("/"))


def _name(key: str) -> str:
    """The object's own name, for messages: the key's last segment (the rest holds the batch_id)."""
    return key.rstrip("/").rsplit("/", 1)[-1] or key


def _code(exc) -> str:
    return str(exc.response.get("Error", {}).get("Code") or "")


def s3_failure(operation: str, exc: Exception) -> Transient | Permanent:
    """A botocore exception as Transient or Permanent (botocore's standard retry mode rules)."""
    from botocore.exceptions import ClientError, ParamValidationError

    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code") or "Unknown")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in THROTTLING_CODES or code in TRANSIENT_CODES or status is None or status in TRANSIENT_STATUS:
            return Transient("s3", f"{operation}: {code}")
        return Permanent("s3", operation, code)
    if isinstance(exc, ParamValidationError):  # the request cannot be built: a bug or a setting
        return Permanent("s3", operation, type(exc).__name__)
    # ConnectionError, HTTPClientError (timeouts, resets), credentials not reachable, checksum
    # of a response not matching: an outage until proven otherwise.
    return Transient("s3", f"{operation}: {type(exc).__name__}")


def os_failure(operation: str, exc: OSError) -> Transient | Permanent:
    """An OSError of the folder store as Transient or Permanent (see TRANSIENT_ERRNO)."""
    code = errno.errorcode.get(exc.errno or 0, type(exc).__name__)
    if exc.errno in PERMANENT_ERRNO:
        return Permanent("storage", operation, code)
    return Transient("storage", f"{operation}: {code}")


def sha256_file(path: str | Path) -> str:
    with open(path, "rb") as f:
        return sha256_stream(f)


def sha256_stream(f) -> str:
    h = hashlib.sha256()
    for chunk in iter(lambda: f.read(1 << 20), b""):
        h.update(chunk)
    return h.hexdigest()


class Store(Protocol):
    def put_file(self, key: str, path: str | Path, media_type: str, sha256: str, create_only: bool = False) -> None: ...

    def put_bytes(self, key: str, data: bytes, media_type: str, create_only: bool = False) -> None: ...

    def get(self, key: str) -> bytes | None: ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None: ...

    def list(self, prefix: str) -> Iterator[str]: ...

    def uri(self, key: str) -> str: ...

    def check(self) -> None: ...


class FileStore:
    def __init__(self, url: str):
        self.root = Path(urlparse(url).path)

    def _path(self, key: str, operation: str) -> Path:
        """The file of a key. A key with an empty, `.` or `..` segment (or a NUL) could name
        another folder than the one it says: refused for good, as S3 refuses a key it cannot hold."""
        if not safe_key(key) or self.root.resolve() not in (p := (self.root / key).resolve()).parents:
            raise Permanent("storage", f"{operation} {_name(key)}", "InvalidKey")
        return p

    def _write(self, key: str, write, sha256: str | None = None) -> None:
        """Through a temporary file; with sha256 (create_only), linked in place only if the
        name is free (the folder's If-None-Match), else compared with what is there."""
        try:
            dest = self._path(key, "put")
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as f:
                    write(f)
                    f.flush()
                    os.fsync(f.fileno())
                if sha256 is None:
                    os.replace(tmp, dest)
                else:
                    self._link_new(tmp, dest, key, sha256)
            finally:
                Path(tmp).unlink(missing_ok=True)
        except OSError as exc:
            raise os_failure(f"put {_name(key)}", exc) from exc

    @staticmethod
    def _link_new(tmp: str, dest: Path, key: str, sha256: str) -> None:
        try:
            os.link(tmp, dest)
            return
        except FileExistsError:
            pass
        except OSError as exc:  # a file system without hard links: checked, then renamed (not atomic)
            if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK):
                raise
            if not dest.exists():
                os.replace(tmp, dest)
                return
        if sha256_file(dest) != sha256:
            raise Permanent("storage", f"put {_name(key)}", OTHER_CONTENT)

    def put_file(self, key: str, path: str | Path, media_type: str, sha256: str, create_only: bool = False) -> None:
        def write(f):
            with open(path, "rb") as src:
                while chunk := src.read(1 << 20):
                    f.write(chunk)

        self._write(key, write, sha256 if create_only else None)

    def put_bytes(self, key: str, data: bytes, media_type: str, create_only: bool = False) -> None:
        self._write(key, lambda f: f.write(data), hashlib.sha256(data).hexdigest() if create_only else None)

    def get(self, key: str) -> bytes | None:
        try:
            return self._path(key, "get").read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise os_failure(f"get {_name(key)}", exc) from exc

    def exists(self, key: str) -> bool:
        try:
            return self._path(key, "head").is_file()
        except OSError as exc:
            raise os_failure(f"head {_name(key)}", exc) from exc

    def delete(self, key: str) -> None:
        """Remove an object of the service's own state (_work/); a missing one is not an error."""
        try:
            self._path(key, "delete").unlink(missing_ok=True)
        except OSError as exc:
            raise os_failure(f"delete {_name(key)}", exc) from exc

    def list(self, prefix: str) -> Iterator[str]:
        if prefix and not safe_key(prefix.rstrip("/")):
            raise Permanent("storage", f"list {_name(prefix)}", "InvalidKey")
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
    CREDENTIAL_CODES = {"InvalidAccessKeyId": "AWS_ACCESS_KEY_ID", "SignatureDoesNotMatch": "AWS_SECRET_ACCESS_KEY",
                        "ExpiredToken": "AWS_SESSION_TOKEN", "InvalidToken": "AWS_SESSION_TOKEN"}

    def __init__(self, url: str, sse: str = "AES256", kms_key_id: str | None = None,
                 checksum_when_required: bool = False, lock_mode: str | None = None, lock_days: int | None = None,
                 expected_owner: str | None = None):
        import boto3
        from botocore.config import Config

        u = urlparse(url)
        self.bucket = u.netloc
        self.prefix = u.path.strip("/")
        if len(self.prefix.encode("utf-8")) > MAX_PREFIX_BYTES:
            raise ConfigError("RELIEFDOCS_STORAGE_URL", f"the key prefix is longer than {MAX_PREFIX_BYTES} bytes: "
                                                        f"object keys could exceed S3's {MAX_KEY_BYTES}")
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
        # Every request names the account that must own the bucket: a bucket of the same name
        # in another account (deleted and re-created by someone else) is refused, not written.
        self.owner = {"ExpectedBucketOwner": expected_owner} if expected_owner else {}

    def _args(self, key: str, media_type: str) -> dict:
        args = dict(Bucket=self.bucket, Key=self._key(key), ContentType=media_type, **self.extra, **self.owner)
        if self.lock and not key.startswith(("_ledger/", "_work/")):  # the service's own state
            import datetime as dt

            args.update(ObjectLockMode=self.lock[0], ObjectLockRetainUntilDate=dt.datetime.now(dt.timezone.utc)
                        + dt.timedelta(days=self.lock[1]))
        return args

    def _key(self, key: str) -> str:
        full = f"{self.prefix}/{key}" if self.prefix else key
        if len(full.encode("utf-8")) > MAX_KEY_BYTES:  # refused here rather than by the server
            raise Permanent("s3", f"store {_name(key)}", "KeyTooLongError")
        return full

    def _fail(self, operation: str, key: str, exc: Exception) -> Transient | Permanent:
        return s3_failure(f"{operation} {_name(key)}", exc)

    def put_file(self, key: str, path: str | Path, media_type: str, sha256: str, create_only: bool = False) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        args = dict(self._args(key, media_type), Metadata={"sha256": sha256})
        try:
            if os.path.getsize(path) > self.MULTIPART_THRESHOLD:
                self._upload_large(key, path, args, sha256, create_only)
                return
            if self.checksums:
                args.update(ChecksumAlgorithm="SHA256", ChecksumSHA256=base64.b64encode(bytes.fromhex(sha256)).decode())
            with open(path, "rb") as body:
                self._put(key, dict(args, Body=body), sha256, create_only)
        except (BotoCoreError, ClientError) as exc:
            raise self._fail("put", key, exc) from exc

    def _upload_large(self, key: str, path: str | Path, args: dict, sha256: str, create_only: bool) -> None:
        """Multipart (boto3's transfer manager cannot send If-None-Match): create_only is a
        check before the upload here, not an atomic condition."""
        from boto3.s3.transfer import TransferConfig

        if create_only and self._stored_sha256(key) is not None:
            self._same_or_refuse(key, sha256)
            return
        extra = {k: v for k, v in args.items() if k not in ("Bucket", "Key")}
        self.client.upload_file(str(path), self.bucket, self._key(key), ExtraArgs=extra,
                                Config=TransferConfig(multipart_threshold=self.MULTIPART_THRESHOLD))

    def put_bytes(self, key: str, data: bytes, media_type: str, create_only: bool = False) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        digest = hashlib.sha256(data).digest()
        args = dict(self._args(key, media_type), Body=data, Metadata={"sha256": digest.hex()})
        if self.checksums:
            args.update(ChecksumAlgorithm="SHA256", ChecksumSHA256=base64.b64encode(digest).decode())
        try:
            self._put(key, args, digest.hex(), create_only)
        except (BotoCoreError, ClientError) as exc:
            raise self._fail("put", key, exc) from exc

    def _put(self, key: str, args: dict, sha256: str, create_only: bool) -> None:
        from botocore.exceptions import ClientError

        if not create_only:
            self.client.put_object(**args)
            return
        try:
            self.client.put_object(IfNoneMatch="*", **args)
        except ClientError as exc:
            if _code(exc) not in ("PreconditionFailed", "412"):
                raise
            self._same_or_refuse(key, sha256)

    def _same_or_refuse(self, key: str, sha256: str) -> None:
        """The key is taken: the same bytes are already there (fine), or other bytes (Permanent)."""
        stored = self._stored_sha256(key)
        if stored is None:  # gone again since the refusal: the next attempt writes it
            raise Transient("s3", f"put {_name(key)}: PreconditionFailed, then not found")
        if stored != sha256:
            raise Permanent("s3", f"put {_name(key)}", OTHER_CONTENT)

    def _stored_sha256(self, key: str) -> str | None:
        """The SHA-256 (hex) of the stored object: our `sha256` metadata, else the S3 checksum
        of a single-part object, else its bytes read again. None if there is no object."""
        from botocore.exceptions import ClientError

        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(key), ChecksumMode="ENABLED", **self.owner)
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404", "NotFound"):
                return None
            raise
        checksum = head.get("ChecksumSHA256") or ""
        if head.get("Metadata", {}).get("sha256"):
            return head["Metadata"]["sha256"]
        if checksum and "-" not in checksum:  # "...-N" is a checksum of part checksums
            return base64.b64decode(checksum).hex()
        body = self.client.get_object(Bucket=self.bucket, Key=self._key(key), **self.owner)["Body"]
        return sha256_stream(body)

    def get(self, key: str) -> bytes | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key), **self.owner)["Body"].read()
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                return None
            raise self._fail("get", key, exc) from exc
        except BotoCoreError as exc:
            raise self._fail("get", key, exc) from exc

    def exists(self, key: str) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key), **self.owner)
            return True
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404", "NotFound"):
                return False
            raise self._fail("head", key, exc) from exc
        except BotoCoreError as exc:
            raise self._fail("head", key, exc) from exc

    def delete(self, key: str) -> None:
        """Remove an object of the service's own state (_work/); a missing one is not an error."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key), **self.owner)
        except (BotoCoreError, ClientError) as exc:
            raise self._fail("delete", key, exc) from exc

    def list(self, prefix: str) -> Iterator[str]:
        from botocore.exceptions import BotoCoreError, ClientError

        strip = len(self.prefix) + 1 if self.prefix else 0
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self._key(prefix),
                                                                          **self.owner)
            for page in pages:
                for obj in page.get("Contents", []):
                    yield obj["Key"][strip:]
        except (BotoCoreError, ClientError) as exc:
            raise self._fail("list", prefix, exc) from exc

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def check(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            # A one-key listing under our prefix, not HeadBucket: it needs only the prefix-scoped
            # s3:ListBucket a least-privilege policy grants (deploy/iam/).
            self.client.list_objects_v2(Bucket=self.bucket, Prefix=self._key(""), MaxKeys=1, **self.owner)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in ("404", "NoSuchBucket"):
                raise ConfigError("RELIEFDOCS_STORAGE_URL", f"bucket {self.bucket} does not exist") from None
            if code in ("403", "AccessDenied"):
                raise ConfigError("RELIEFDOCS_STORAGE_URL", f"access to bucket {self.bucket} is denied") from None
            refused = s3_failure("list bucket", exc)
            if isinstance(refused, Permanent):
                raise ConfigError(self.CREDENTIAL_CODES.get(code, "RELIEFDOCS_STORAGE_URL"),
                                  f"the object store refuses access to bucket {self.bucket}: {code}") from None
            raise refused from exc
        except BotoCoreError as exc:
            refused = s3_failure("list bucket", exc)
            if isinstance(refused, Permanent):
                raise ConfigError("RELIEFDOCS_STORAGE_URL", f"cannot list bucket {self.bucket}: {refused.code}") from None
            raise refused from exc


def open_store(settings) -> Store:
    """The store a Settings object names (RELIEFDOCS_STORAGE_URL and the S3 settings)."""
    url = settings.storage_url
    if url.startswith("file://"):
        return FileStore(url)
    return S3Store(url, sse=settings.s3_sse, kms_key_id=settings.s3_kms_key_id,
                   checksum_when_required=settings.s3_checksum_when_required,
                   lock_mode=settings.s3_object_lock_mode, lock_days=settings.s3_object_lock_days,
                   expected_owner=settings.s3_expected_bucket_owner)
