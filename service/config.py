"""Configuration: every setting in one table, read from RELIEFDOCS_* variables and flags.

The table below is the configuration reference (docs/configuration.md is generated from it
and a test keeps the two equal). A bad value raises ConfigError naming the setting; the CLI
turns that into exit code 2.

Any kafka-python client setting can be given as RELIEFDOCS_KAFKA_<SETTING>, for example
RELIEFDOCS_KAFKA_SESSION_TIMEOUT_MS=6000 or RELIEFDOCS_KAFKA_SECURITY_PROTOCOL=SASL_SSL.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping
from urllib.parse import urlparse

from service.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "RELIEFDOCS_"
KAFKA_PREFIX = PREFIX + "KAFKA_"


def _positive_int(v: str) -> int:
    n = int(v)
    if n < 1:
        raise ValueError("must be a whole number of at least 1")
    return n


def _non_negative_float(v: str) -> float:
    x = float(v)
    if x < 0:
        raise ValueError("must be 0 or more")
    return x


def _port(v: str) -> int:
    try:
        n = int(v)
    except ValueError:
        raise ValueError("must be a port number 0-65535") from None
    if not 0 <= n < 65536:
        raise ValueError("must be a port number 0-65535")
    return n


def _bounded_int(low: int, high: int) -> Callable[[str], int]:
    def parse(v: str) -> int:
        try:
            n = int(v)
        except ValueError:
            raise ValueError(f"must be a whole number from {low} to {high}") from None
        if not low <= n <= high:
            raise ValueError(f"must be a whole number from {low} to {high}")
        return n

    return parse


def _account_id(v: str) -> str:
    if not (len(v) == 12 and v.isascii() and v.isdigit()):
        raise ValueError("must be an AWS account id: 12 digits")
    return v


def _bool(v: str) -> bool:
    s = v.strip().lower()
    if s in ("1", "true", "yes", "on"):
        return True
    if s in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("must be true or false")


def _storage_url(v: str) -> str:
    u = urlparse(v)
    if u.scheme == "s3" and u.netloc:
        return v.rstrip("/")
    if u.scheme == "file" and u.path.startswith("/") and not u.netloc:
        return v.rstrip("/")
    raise ValueError("must be s3://bucket[/prefix] or file:///absolute/path")


def _topic(v: str) -> str:
    import re

    if not re.fullmatch(r"[A-Za-z0-9._-]{1,249}", v):
        raise ValueError("must be a Kafka topic name ([A-Za-z0-9._-], 1 to 249 characters)")
    return v


def _choice(*options: str) -> Callable[[str], str]:
    def parse(v: str) -> str:
        if v not in options:
            raise ValueError("must be one of " + ", ".join(options))
        return v

    return parse


ROLES = ("compose", "file")


def _roles(v: str) -> frozenset[str]:
    roles = frozenset(r.strip() for r in v.split(",") if r.strip())
    if not roles or roles - set(ROLES):
        raise ValueError("must be compose, file or compose,file")
    return roles


@dataclass(frozen=True)
class Setting:
    name: str  # attribute name; the env var is RELIEFDOCS_<NAME upper>
    default: Any
    parse: Callable[[str], Any]
    help: str
    commands: tuple[str, ...] = ("worker",)

    @property
    def env(self) -> str:
        return PREFIX + self.name.upper()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


SETTINGS: tuple[Setting, ...] = (
    Setting("decisions_topic", "eligibility.decided", _topic,
            "Input topic: decisions and batch-closed events, key = court code.", ("worker", "publish", "lag", "dlq", "reconcile", "report", "find")),
    Setting("notifications_topic", "filing.bundle.ready", _topic,
            "Output topic: one relief.filing.bundle.ready.v1 event per stored bundle.", ("worker", "find")),
    Setting("dlq_topic", "eligibility.decided.dlq", _topic,
            "Dead-letter topic: every input record the service could not use, unchanged, with reason headers.",
            ("worker", "dlq", "reconcile", "report", "find")),
    Setting("work_topic", "reliefdocs.filing.work", _topic,
            "Work topic: one record per sealed batch, key = bundle id (the batch itself is in object storage "
            "under _work/). Any worker of the group files any court's batches from it (issue 16).",
            ("worker", "lag", "report")),
    Setting("work_partitions", 12, _positive_int,
            "Partitions of the work topic when the worker creates it (RELIEFDOCS_CREATE_TOPICS): at least the "
            "most workers the group scales to, so that each can file.", ("worker",)),
    Setting("roles", "compose,file", _roles,
            "What this worker does: compose (read decisions, seal batches, queue them on the work topic), "
            "file (file queued batches: render, convert, store, notify), or both (the default).", ("worker",)),
    Setting("compose_ahead", 24, _bounded_int(0, 100000),
            "For a worker that composes and files (the default roles): how many work items per worker of the "
            "group it may keep queued and not yet filed; its decisions partitions pause there. Above what a worker "
            "files at once (converters + 1) and above the KEDA work trigger's 20 per worker, so that a filing "
            "backlog still scales the group. Keeps a county's composing from taking the first minutes of CPU and "
            "from being bound to the workers of the moment. 0: no bound (service/lookahead.py).", ("worker",)),
    Setting("group", "reliefdocs", str, "Kafka consumer group of the workers.", ("worker", "lag", "dlq", "reconcile", "report", "find")),
    Setting("assignor", "range", _choice("range", "roundrobin", "cooperative-sticky"),
            "How the group assigns partitions: range or roundrobin (eager: every rebalance revokes every partition, "
            "and each worker drops its open batches), or cooperative-sticky (incremental: only the partitions that "
            "move are revoked; the others keep their open batches). All workers of a group must share one strategy "
            "(switch with a rolling update through a list, see docs/deploy.md).", ("worker",)),
    Setting("create_topics", True, _bool,
            "Create missing topics at start (3 partitions, replication 1: for local runs). Off in production: the "
            "topics are created ahead with their partitions and replication (docs/deploy.md), and a missing topic "
            "is waited for.", ("worker",)),
    Setting("dlq_replay_group", None, str,
            "Prefix of the consumer groups in which `dlq replay` records what it replayed, one group per reason "
            "(`<prefix>.<reason>`; default `<RELIEFDOCS_GROUP>.dlq-replay`).", ("dlq",)),
    Setting("dlq_max_replays", 3, _positive_int,
            "`dlq replay` skips (and reports) a record that was already replayed this many times.", ("dlq",)),
    Setting("storage_url", None, _storage_url,
            "Where bundles are stored: s3://bucket[/prefix] or file:///absolute/path. Required (for `dlq replay`: "
            "only to replay a dead letter whose record was stored under _dlq/).",
            ("worker", "verify", "dlq", "reconcile", "report", "find")),
    Setting("batch_max_cases", 500, _positive_int,
            "A batch is filed when it holds this many decisions; the rest goes into the next volume."),
    Setting("batch_linger_seconds", 300.0, _non_negative_float,
            "A batch is filed this long after its first decision (log time), if nothing closed it before."),
    Setting("allow_default_court", False, _bool,
            "File decisions of a court code that has no folder templates/courts/<CODE>/ with the default court's "
            "settings. Off: such a decision is dead-lettered as unknown_court (the default service list is a "
            "placeholder).", ("worker",)),
    Setting("max_record_bytes", 1024 * 1024, _bounded_int(1024, 64 * 1024 * 1024),
            "A record whose key, value and headers together are larger (bytes) is dead-lettered as too_large, "
            "unread (the default is Kafka's default max.message.bytes)."),
    Setting("max_json_depth", 64, _bounded_int(8, 200),  # 200: events.MAX_DEPTH_CEILING
            "A record value nested deeper (arrays and objects) is dead-lettered as invalid_json, unread."),
    Setting("templates_dir", str(ROOT / "templates"), str,
            "Folder of DOCX templates, office.json and courts/<CODE>/ settings.", ("worker", "templates", "preview")),
    Setting("schemas_dir", str(ROOT / "schemas"), str, "Folder of the JSON Schemas (the contract).",
            ("worker", "publish", "templates", "preview", "dlq", "verify")),
    Setting("soffice", "soffice", str, "The LibreOffice executable.", ("worker", "preview")),
    Setting("libreoffice_mode", "auto", _choice("auto", "warm", "cold"),
            "warm: keep one LibreOffice running per converter, driven over UNO (needs python3-uno); cold: start "
            "one per batch; auto: warm where python3-uno is installed.", ("worker", "preview")),
    Setting("libreoffice_python", "/usr/bin/python3", str,
            "The Python that has LibreOffice's uno module (warm mode).", ("worker", "preview")),
    Setting("convert_timeout_seconds", 600.0, _non_negative_float,
            "A LibreOffice conversion that takes longer is killed and retried.", ("worker", "preview")),
    Setting("converters", max(1, min(2, os.cpu_count() or 1)), _positive_int,
            "How many LibreOffice processes a worker keeps. One batch more than this is filed at once, so "
            "that LibreOffice converts while a batch is rendered, merged or stored."),
    Setting("exhibit_chunk_rows", 200, _positive_int,
            "Exhibit tables are cut into tables of this many rows. (LibreOffice's time per row grows with the "
            "document's length, not the table's: what keeps it linear is RELIEFDOCS_BATCH_MAX_CASES.)",
            ("worker", "preview")),
    Setting("work_dir", None, str,
            "Scratch folder for rendering and conversion; each worker uses its own worker-* folder in it and removes "
            "those of workers that are gone (several workers may share it). Default: reliefdocs-<uid> in the "
            "system's temporary folder.", ("worker", "preview")),
    Setting("s3_checksum_when_required", False, _bool,
            "Send and check S3 checksums only when required (some S3-compatible stores need it).",
            ("worker", "verify", "reconcile", "report", "find")),
    Setting("s3_sse", "AES256", _choice("AES256", "aws:kms", "none"),
            "Server-side encryption of stored objects: AES256 (SSE-S3), aws:kms (SSE-KMS) or none.", ("worker",)),
    Setting("s3_kms_key_id", None, str, "KMS key id or ARN for s3_sse=aws:kms.", ("worker",)),
    Setting("s3_object_lock_mode", None, _choice("GOVERNANCE", "COMPLIANCE"),
            "Object Lock retention mode for stored bundles (the bucket must have Object Lock enabled).", ("worker",)),
    Setting("s3_object_lock_days", None, _positive_int,
            "Days each stored object is retained under Object Lock (with s3_object_lock_mode).", ("worker",)),
    Setting("s3_expected_bucket_owner", None, _account_id,
            "The AWS account id (12 digits) that must own the bucket: sent with every S3 request "
            "(ExpectedBucketOwner), so a bucket of the same name in another account is refused, never written.",
            ("worker", "dlq", "verify")),
    Setting("metrics_port", None, _port,
            "Serve /metrics (Prometheus), /healthz and /readyz on this port (0: any free port; unset: off).",
            ("worker",)),
    Setting("retry_max_seconds", 60.0, _non_negative_float,
            "Longest wait between two retries of a failing dependency (backoff with jitter).", ("worker",)),
    Setting("shutdown_seconds", 60.0, _non_negative_float,
            "On SIGTERM, how long running flushes may take before they are abandoned (uncommitted).", ("worker",)),
    Setting("exit_when_idle", None, _non_negative_float,
            "Exit 0 once the partitions are read to the end, every open batch is filed and nothing new came for this many seconds.",
            ("worker",)),
    Setting("exit_when_idle_timeout_seconds", 900.0, _non_negative_float,
            "With exit_when_idle: exit 3 when the worker has made no progress and could not exit for this long, "
            "logging what it was waiting for (it never waits without limit).", ("worker",)),
    Setting("rejoin_timeout_seconds", None, _non_negative_float,
            "A worker without an assignment this long after a rebalance began, or whose loop has not turned this "
            "long (blocked in the Kafka client), rejoins its group with a new consumer; after twice this long "
            "/healthz fails (and an --exit-when-idle worker exits 3). Default: 4 session timeouts, at least 30 s, and "
            "longer than a revocation may wait for running filings (RELIEFDOCS_SHUTDOWN_SECONDS, at most 120) plus "
            "2 session timeouts.",
            ("worker",)),
    Setting("log_level", "INFO", _choice("DEBUG", "INFO", "WARNING", "ERROR"), "Log level.",
            ("worker", "publish", "templates", "preview", "lag", "dlq", "verify", "reconcile", "report", "find")),
)

BY_NAME = {s.name: s for s in SETTINGS}


@dataclass
class Settings:
    values: dict[str, Any]
    kafka: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["values"][name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def bootstrap_servers(self) -> list[str]:
        return [s.strip() for s in str(self.kafka["bootstrap_servers"]).split(",") if s.strip()]

    def kafka_client(self, kind: str) -> dict[str, Any]:
        """kafka-python settings for a client of `kind` ("consumer", "producer" or "admin"),
        keeping only the keys that client knows (one env var can serve all three)."""
        from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

        known = {"consumer": KafkaConsumer, "producer": KafkaProducer, "admin": KafkaAdminClient}[kind].DEFAULT_CONFIG
        cfg = {k: v for k, v in self.kafka.items() if k in known}
        cfg["bootstrap_servers"] = self.bootstrap_servers
        return cfg


def _kafka_known_keys() -> set[str]:
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

    return set(KafkaConsumer.DEFAULT_CONFIG) | set(KafkaProducer.DEFAULT_CONFIG) | set(KafkaAdminClient.DEFAULT_CONFIG)


def _kafka_value(key: str, raw: str) -> Any:
    """Give a kafka-python setting the type of its default (int, float, bool or string)."""
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

    default = None
    for client in (KafkaConsumer, KafkaProducer, KafkaAdminClient):
        if key in client.DEFAULT_CONFIG and client.DEFAULT_CONFIG[key] is not None:
            default = client.DEFAULT_CONFIG[key]
            break
    if isinstance(default, bool):
        return _bool(raw)
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, float):
        return float(raw)
    if isinstance(default, (list, tuple)) and key != "bootstrap_servers":
        return [x.strip() for x in raw.split(",") if x.strip()]
    if raw.lower() in ("none", "null"):
        return None
    return raw


def _without(message: str, value: str) -> str:
    """An error message that does not repeat the value (it may be a secret read from a file)."""
    return message.replace(repr(value), "the value").replace(value, "the value") if value else message


def _from_files(env: Mapping[str, str]) -> dict[str, str]:
    """Secrets may come from files: RELIEFDOCS_X_FILE=/path sets RELIEFDOCS_X to the file's
    content (Kubernetes and Docker secrets), for every setting including RELIEFDOCS_KAFKA_*."""
    out = dict(env)
    for var, path in env.items():
        if var.startswith(PREFIX) and var.endswith("_FILE") and path:
            target = var[: -len("_FILE")]
            try:
                out[target] = Path(path).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(var, f"cannot read {path}: {exc.strerror}") from None
            del out[var]
    return out


def load(env: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None,
         required: tuple[str, ...] = ()) -> Settings:
    """Read every setting from `env` (default os.environ), then apply `overrides` (flags,
    already typed or raw strings). Raises ConfigError naming the first bad setting."""
    env = _from_files(os.environ if env is None else env)
    overrides = overrides or {}
    values: dict[str, Any] = {}
    for s in SETTINGS:
        raw = overrides.get(s.name)
        source = s.flag
        if raw is None:
            raw = env.get(s.env)
            source = s.env
        if raw is None or raw == "":
            values[s.name] = s.default
            continue
        try:
            values[s.name] = s.parse(str(raw)) if isinstance(raw, str) else raw
        except ValueError as exc:
            raise ConfigError(source, _without(str(exc), str(raw))) from None
    for name in required:
        if values.get(name) in (None, ""):
            raise ConfigError(BY_NAME[name].env, "is required")
    if bool(values["s3_object_lock_mode"]) != bool(values["s3_object_lock_days"]):
        raise ConfigError(BY_NAME["s3_object_lock_days"].env,
                          "RELIEFDOCS_S3_OBJECT_LOCK_MODE and RELIEFDOCS_S3_OBJECT_LOCK_DAYS go together")
    if values["s3_sse"] == "aws:kms" and not values["s3_kms_key_id"]:
        raise ConfigError(BY_NAME["s3_kms_key_id"].env, "is required when RELIEFDOCS_S3_SSE=aws:kms")
    if isinstance(values["roles"], str):
        values["roles"] = _roles(values["roles"])
    if values["work_topic"] in (values["decisions_topic"], values["notifications_topic"], values["dlq_topic"]):
        raise ConfigError(BY_NAME["work_topic"].env, "must differ from the decisions, notifications and DLQ topics")
    for other in ("decisions_topic", "notifications_topic"):
        if values["dlq_topic"] == values[other]:
            raise ConfigError(BY_NAME["dlq_topic"].env, f"must differ from {BY_NAME[other].env} (dead letters would "
                                                        "be read again: an endless loop)")

    known = _kafka_known_keys()
    kafka: dict[str, Any] = {"bootstrap_servers": "127.0.0.1:9092"}
    for var, raw in env.items():
        if not var.startswith(KAFKA_PREFIX):
            continue
        key = var[len(KAFKA_PREFIX):].lower()
        if key not in known:
            raise ConfigError(var, f"is not a kafka-python client setting ('{key}')")
        if key in ("key_serializer", "value_serializer", "key_deserializer", "value_deserializer",
                   "partitioner", "sasl_oauth_token_provider", "ssl_context", "selector", "metric_reporters"):
            raise ConfigError(var, "cannot be set from the environment (it takes a Python object)")
        try:
            kafka[key] = _kafka_value(key, raw)
        except ValueError as exc:
            raise ConfigError(var, _without(str(exc), raw)) from None
    if overrides.get("bootstrap_servers"):
        kafka["bootstrap_servers"] = overrides["bootstrap_servers"]
    if not str(kafka["bootstrap_servers"]).strip():
        raise ConfigError(KAFKA_PREFIX + "BOOTSTRAP_SERVERS", "is empty")
    for d in ("templates_dir", "schemas_dir"):
        if not Path(values[d]).is_dir():
            raise ConfigError(BY_NAME[d].env, f"folder {values[d]} does not exist")
    return Settings(values=values, kafka=kafka)
