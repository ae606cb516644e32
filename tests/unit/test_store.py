"""Failures of the object store, classified as the AWS SDKs classify them: Transient (retried)
or Permanent (the batch is dead-lettered); keys that could leave their folder are refused."""

import base64
import errno
import hashlib
import io

import pytest
from botocore.exceptions import (ClientError, ConnectTimeoutError, EndpointConnectionError, NoCredentialsError,
                                 ParamValidationError, ReadTimeoutError)
from botocore.response import StreamingBody
from botocore.stub import Stubber

from service import config
from service.errors import ConfigError, Permanent, Transient
from service.store import FileStore, S3Store, os_failure, s3_failure, safe_key


def client_error(code: str, status: int | None) -> ClientError:
    response = {"Error": {"Code": code, "Message": "refused"}}
    if status is not None:
        response["ResponseMetadata"] = {"HTTPStatusCode": status}
    return ClientError(response, "PutObject")


@pytest.mark.parametrize("code,status", [
    ("SlowDown", 503), ("ServiceUnavailable", 503), ("InternalError", 500), ("RequestTimeout", 400),
    ("Throttling", 400), ("ThrottlingException", 400), ("TooManyRequestsException", 429), ("BadGateway", 502),
    ("GatewayTimeout", 504), ("KMS.ThrottlingException", 400), ("OperationAborted", 409), ("Whatever", None),
    ("RequestTimeTooSkewed", 403),
])
def test_transient_codes(code, status):
    exc = s3_failure("put bundle.pdf", client_error(code, status))
    assert isinstance(exc, Transient)
    assert exc.dependency == "s3" and code in str(exc)


@pytest.mark.parametrize("code,status", [
    ("AccessDenied", 403), ("InvalidAccessKeyId", 403), ("SignatureDoesNotMatch", 403), ("KeyTooLongError", 400),
    ("InvalidArgument", 400), ("KMS.DisabledException", 400), ("KMS.NotFoundException", 400),
    ("KMS.KMSInvalidStateException", 400), ("NoSuchBucket", 404), ("InvalidRequest", 400),
    ("EntityTooLarge", 400), ("NotImplemented", 501), ("MethodNotAllowed", 405),
])
def test_permanent_codes(code, status):
    exc = s3_failure("put bundle.pdf", client_error(code, status))
    assert isinstance(exc, Permanent)
    assert (exc.dependency, exc.operation, exc.code) == ("s3", "put bundle.pdf", code)
    assert str(exc) == f"s3: put bundle.pdf refused: {code}"


@pytest.mark.parametrize("exc", [
    EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
    ReadTimeoutError(endpoint_url="http://127.0.0.1:1"),
    ConnectTimeoutError(endpoint_url="http://127.0.0.1:1"),
    NoCredentialsError(),
])
def test_connection_errors_are_transient(exc):
    assert isinstance(s3_failure("get manifest.json", exc), Transient)


def test_a_request_that_cannot_be_built_is_permanent():
    exc = s3_failure("put bundle.pdf", ParamValidationError(report="Invalid length for parameter Key"))
    assert isinstance(exc, Permanent) and exc.code == "ParamValidationError"


@pytest.mark.parametrize("code", [errno.ENAMETOOLONG, errno.EACCES, errno.EPERM, errno.EROFS, errno.EINVAL,
                                  errno.ENOTDIR])
def test_permanent_errno(code):
    exc = os_failure("put bundle.pdf", OSError(code, "x"))
    assert isinstance(exc, Permanent) and exc.code == errno.errorcode[code]


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EAGAIN, errno.ESTALE, errno.EMFILE])
def test_transient_errno(code):
    exc = os_failure("put bundle.pdf", OSError(code, "x"))
    assert isinstance(exc, Transient) and errno.errorcode[code] in str(exc)


@pytest.mark.parametrize("key", ["..", ".", "a/../b", "../x", "a/./b", "a//b", "a/b/", "/a", "a/..", "a\0b"])
def test_file_store_refuses_keys_that_could_leave_their_folder(tmp_path, key):
    store = FileStore(f"file://{tmp_path}/root")
    assert not safe_key(key)
    for call in (lambda: store.put_bytes(key, b"x", "text/plain"), lambda: store.get(key),
                 lambda: store.exists(key)):
        with pytest.raises(Permanent) as info:
            call()
        assert info.value.code == "InvalidKey"
    assert not (tmp_path / "x").exists() and not (tmp_path / "b").exists()


def test_file_store_name_too_long_is_permanent(tmp_path):
    store = FileStore(f"file://{tmp_path}")
    key = "SD/" + "x" * 300 + "/bundle.pdf"
    with pytest.raises(Permanent) as info:
        store.put_bytes(key, b"x", "application/pdf")
    assert (info.value.code, info.value.operation) == ("ENAMETOOLONG", "put bundle.pdf")
    assert "x" * 20 not in str(info.value)
    assert not any(p.name.startswith(".tmp-") for p in tmp_path.rglob("*"))


def test_file_store_read_only_folder_is_permanent(tmp_path, monkeypatch):
    store = FileStore(f"file://{tmp_path}")

    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr("tempfile.mkstemp", refuse)
    with pytest.raises(Permanent) as info:
        store.put_bytes("SD/b/1/manifest.json", b"{}", "application/json")
    assert info.value.code == "EROFS"


def test_file_store_disk_full_is_transient(tmp_path, monkeypatch):
    store = FileStore(f"file://{tmp_path}")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("tempfile.mkstemp", full)
    with pytest.raises(Transient):
        store.put_bytes("SD/b/1/manifest.json", b"{}", "application/json")


@pytest.fixture
def s3(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    store = S3Store("s3://bucket/prefix", checksum_when_required=True)
    with Stubber(store.client) as stub:
        yield store, stub


def test_s3_put_refused_is_permanent_and_throttled_is_transient(s3):
    store, stub = s3
    stub.add_client_error("put_object", service_error_code="AccessDenied", http_status_code=403)
    with pytest.raises(Permanent) as info:
        store.put_bytes("SD/b/1/bundle.pdf", b"%PDF", "application/pdf")
    assert info.value.code == "AccessDenied"
    stub.add_client_error("put_object", service_error_code="KMS.DisabledException", http_status_code=400)
    with pytest.raises(Permanent):
        store.put_bytes("SD/b/1/bundle.pdf", b"%PDF", "application/pdf")
    stub.add_client_error("get_object", service_error_code="SlowDown", http_status_code=503)
    with pytest.raises(Transient):
        store.get("SD/b/1/manifest.json")


def test_s3_key_over_1024_bytes_is_refused_before_sending(s3):
    store, stub = s3
    with pytest.raises(Permanent) as info:
        store.put_bytes("SD/" + "漢" * 400 + "/bundle.pdf", b"%PDF", "application/pdf")
    assert info.value.code == "KeyTooLongError" and "漢" not in str(info.value)
    stub.assert_no_pending_responses()


@pytest.mark.parametrize("code,setting", [("InvalidAccessKeyId", "AWS_ACCESS_KEY_ID"),
                                          ("SignatureDoesNotMatch", "AWS_SECRET_ACCESS_KEY"),
                                          ("KMS.DisabledException", "RELIEFDOCS_STORAGE_URL")])
def test_s3_check_refused_is_a_configuration_error(s3, code, setting):
    store, stub = s3
    stub.add_client_error("list_objects_v2", service_error_code=code, http_status_code=403)
    with pytest.raises(ConfigError) as info:
        store.check()
    assert info.value.setting == setting and code in str(info.value)


def test_s3_prefix_too_long_is_a_configuration_error(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with pytest.raises(ConfigError) as info:
        S3Store("s3://bucket/" + "p" * 600)
    assert info.value.setting == "RELIEFDOCS_STORAGE_URL"


def test_file_store_lists_everything_or_a_safe_prefix(tmp_path):
    store = FileStore(f"file://{tmp_path}")
    store.put_bytes("SD/b/1/manifest.json", b"{}", "application/json")
    assert list(store.list("")) == list(store.list("SD/")) == ["SD/b/1/manifest.json"]
    with pytest.raises(Permanent):
        list(store.list("../"))


# -- writes that cannot silently overwrite ------------------------------------------------
def test_s3_create_only_sends_if_none_match_and_a_plain_put_does_not(s3):
    store, stub = s3
    digest = hashlib.sha256(b"%PDF").hexdigest()
    stub.add_response("put_object", {}, {"Bucket": "bucket", "Key": "prefix/SD/b/1/bundle.pdf", "Body": b"%PDF",
                                         "ContentType": "application/pdf", "ServerSideEncryption": "AES256",
                                         "Metadata": {"sha256": digest}, "IfNoneMatch": "*"})
    store.put_bytes("SD/b/1/bundle.pdf", b"%PDF", "application/pdf", create_only=True)
    stub.add_response("put_object", {}, {"Bucket": "bucket", "Key": "prefix/_ledger/SD/x.json", "Body": b"{}",
                                         "ContentType": "application/json", "ServerSideEncryption": "AES256",
                                         "Metadata": {"sha256": hashlib.sha256(b"{}").hexdigest()}})
    store.put_bytes("_ledger/SD/x.json", b"{}", "application/json")
    stub.assert_no_pending_responses()


def _refused_then_head(stub, head: dict) -> None:
    stub.add_client_error("put_object", service_error_code="PreconditionFailed", http_status_code=412)
    stub.add_response("head_object", head, {"Bucket": "bucket", "Key": "prefix/SD/b/1/bundle.pdf",
                                            "ChecksumMode": "ENABLED"})


def test_s3_create_only_of_the_same_bytes_already_there_is_fine(s3):
    store, stub = s3
    _refused_then_head(stub, {"Metadata": {"sha256": hashlib.sha256(b"%PDF").hexdigest()}})
    store.put_bytes("SD/b/1/bundle.pdf", b"%PDF", "application/pdf", create_only=True)
    # without our metadata, the S3 checksum of the stored object
    _refused_then_head(stub, {"ChecksumSHA256": base64.b64encode(hashlib.sha256(b"%PDF").digest()).decode()})
    store.put_bytes("SD/b/1/bundle.pdf", b"%PDF", "application/pdf", create_only=True)
    stub.assert_no_pending_responses()


def test_s3_create_only_over_other_bytes_is_permanent_naming_the_object(s3):
    store, stub = s3
    _refused_then_head(stub, {"Metadata": {"sha256": hashlib.sha256(b"other").hexdigest()}})
    with pytest.raises(Permanent) as info:
        store.put_bytes("SD/b/1/bundle.pdf", b"%PDF", "application/pdf", create_only=True)
    assert "bundle.pdf" in info.value.operation and info.value.code.startswith("PreconditionFailed")


def test_s3_create_only_conflict_in_flight_is_transient(s3):
    store, stub = s3
    stub.add_client_error("put_object", service_error_code="ConditionalRequestConflict", http_status_code=409)
    with pytest.raises(Transient):
        store.put_bytes("SD/b/1/bundle.pdf", b"%PDF", "application/pdf", create_only=True)


def test_s3_expected_bucket_owner_goes_with_every_request(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    store = S3Store("s3://bucket/prefix", checksum_when_required=True, expected_owner="111122223333")
    owner = {"ExpectedBucketOwner": "111122223333"}
    with Stubber(store.client) as stub:
        stub.add_response("list_objects_v2", {}, {"Bucket": "bucket", "Prefix": "prefix/", "MaxKeys": 1, **owner})
        stub.add_response("put_object", {}, {"Bucket": "bucket", "Key": "prefix/a", "Body": b"x",
                                             "ContentType": "text/plain", "ServerSideEncryption": "AES256",
                                             "Metadata": {"sha256": hashlib.sha256(b"x").hexdigest()}, **owner})
        stub.add_response("get_object", {"Body": StreamingBody(io.BytesIO(b"x"), 1)},
                          {"Bucket": "bucket", "Key": "prefix/a", **owner})
        stub.add_response("head_object", {}, {"Bucket": "bucket", "Key": "prefix/a", **owner})
        stub.add_client_error("get_object", service_error_code="AccessDenied", http_status_code=403)
        store.check()
        store.put_bytes("a", b"x", "text/plain")
        assert store.get("a") == b"x"
        assert store.exists("a")
        with pytest.raises(Permanent):  # what S3 answers for a bucket of another account
            store.get("a")
        stub.assert_no_pending_responses()


def test_expected_bucket_owner_setting_is_an_account_id():
    assert config.load({"RELIEFDOCS_S3_EXPECTED_BUCKET_OWNER": "111122223333"}).s3_expected_bucket_owner == "111122223333"
    with pytest.raises(ConfigError) as info:
        config.load({"RELIEFDOCS_S3_EXPECTED_BUCKET_OWNER": "my-account"})
    assert info.value.setting == "RELIEFDOCS_S3_EXPECTED_BUCKET_OWNER" and "my-account" not in str(info.value)


def test_file_store_create_only_keeps_the_first_object(tmp_path):
    store = FileStore(f"file://{tmp_path}")
    store.put_bytes("SD/b/1/manifest.json", b"{}", "application/json", create_only=True)
    store.put_bytes("SD/b/1/manifest.json", b"{}", "application/json", create_only=True)  # the same: fine
    with pytest.raises(Permanent) as info:
        store.put_bytes("SD/b/1/manifest.json", b"{ }", "application/json", create_only=True)
    assert "manifest.json" in info.value.operation
    assert store.get("SD/b/1/manifest.json") == b"{}"
    store.put_bytes("SD/b/1/manifest.json", b"{ }", "application/json")  # a plain put overwrites
    assert store.get("SD/b/1/manifest.json") == b"{ }"
    assert [p.name for p in (tmp_path / "SD/b/1").iterdir()] == ["manifest.json"]  # no temporary left


def test_file_store_create_only_without_hard_links(tmp_path, monkeypatch):
    def no_links(src, dst):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr("service.store.os.link", no_links)
    store = FileStore(f"file://{tmp_path}")
    store.put_bytes("SD/b/1/manifest.json", b"{}", "application/json", create_only=True)
    store.put_bytes("SD/b/1/manifest.json", b"{}", "application/json", create_only=True)
    with pytest.raises(Permanent) as info:
        store.put_bytes("SD/b/1/manifest.json", b"{ }", "application/json", create_only=True)
    assert info.value.code.startswith("PreconditionFailed")
    assert store.get("SD/b/1/manifest.json") == b"{}"
