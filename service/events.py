"""Stage 1: a Kafka record becomes a validated event, or a Rejection for the DLQ.

Both CloudEvents Kafka content modes are read:
- structured: the value is a JSON CloudEvent (header content-type may be absent);
- binary: ce_* headers carry the attributes and the value is the `data` JSON.

Validation uses the JSON Schemas in schemas/ (the contract upstream teams read). Error
messages name fields and rules, never the values they hold: a value may be a person's name.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from service.errors import Rejected

DECIDED = "relief.eligibility.decided.v1"
BATCH_CLOSED = "relief.batch.closed.v1"
BUNDLE_READY = "relief.filing.bundle.ready.v1"
GRANTED = ("dismiss_and_seal", "reduce_to_misdemeanor", "redesignate_infraction")
NOT_FILED = ("not_eligible", "review_required")

# Characters XML 1.0 cannot hold (a DOCX is XML), and lone surrogates JSON can smuggle in.
_UNPRINTABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


@dataclass(frozen=True)
class Decision:
    decision_id: str
    court_code: str
    batch_id: str | None
    relief: str
    data: dict[str, Any]

    @property
    def granted(self) -> bool:
        return self.relief in GRANTED

    @property
    def digest(self) -> str:
        """What the decision says, batch aside: two records of one decision_id with different
        digests are a conflict (a correction sent as a duplicate), not a redelivery."""
        content = {k: v for k, v in self.data.items() if k != "batch_id"}
        return hashlib.sha256(json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
                              .encode("utf-8", "surrogatepass")).hexdigest()[:32]


@dataclass(frozen=True)
class BatchClosed:
    court_code: str
    batch_id: str
    expected_count: int | None
    reason: str  # upstream, or linger / idle / shutdown for the service's own markers
    volume: int | None


Event = Decision | BatchClosed


class Schemas:
    """The contract's JSON Schemas, loaded once from a folder."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def _validator(self, name: str) -> Draft202012Validator:
        schema = json.loads((self.folder / f"{name}.schema.json").read_text(encoding="utf-8"))
        Draft202012Validator.check_schema(schema)
        return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)

    @cached_property
    def envelope(self) -> Draft202012Validator:
        return self._validator("cloudevent")

    @cached_property
    def by_type(self) -> dict[str, Draft202012Validator]:
        return {t: self._validator(t) for t in (DECIDED, BATCH_CLOSED, BUNDLE_READY)}


def _path(prefix: str, parts) -> str:
    out = prefix
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


def _describe(error, prefix: str) -> str:
    """A schema error as a message that names the field and the rule, never the value."""
    where = _path(prefix, error.absolute_path)
    v, rule = error.validator, error.validator_value
    if v == "required":
        missing = [r for r in rule if isinstance(error.instance, dict) and r not in error.instance]
        return f"{where}: missing required field {', '.join(missing) or rule}"
    if v == "type":
        return f"{where}: must be of type {rule}"
    if v in ("enum", "const"):
        return f"{where}: must be one of {rule if v == 'enum' else [rule]}"
    if v in ("pattern", "format"):
        return f"{where}: does not match {v} {rule}"
    if v in ("minLength", "maxLength", "minItems", "maxItems", "minimum", "maximum"):
        return f"{where}: violates {v}={rule}"
    return f"{where}: violates '{v}'"


def _validate(validator: Draft202012Validator, instance: Any, prefix: str) -> None:
    errors = sorted(validator.iter_errors(instance), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise Rejected("schema_violation", _describe(errors[0], prefix) + more)


def _unprintable_field(value: Any, path: str) -> str | None:
    if isinstance(value, str):
        return path if _UNPRINTABLE.search(value) else None
    if isinstance(value, dict):
        for k, v in value.items():
            found = _unprintable_field(v, f"{path}.{k}")
            if found:
                return found
    if isinstance(value, list):
        for i, v in enumerate(value):
            found = _unprintable_field(v, f"{path}[{i}]")
            if found:
                return found
    return None


def _header(headers, name: str) -> bytes | None:
    for k, v in headers or ():
        if k == name or k.lower() == name:
            return v
    return None


def _json(raw: bytes | None, what: str) -> Any:
    if raw is None:
        raise Rejected("invalid_json", f"{what} is empty (a tombstone or a record without value)")
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise Rejected("invalid_json", f"{what} is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise Rejected("invalid_json", f"{what} is not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None


def to_cloudevent(key: bytes | None, value: bytes | None, headers) -> dict[str, Any]:
    """Reassemble the CloudEvent of a record in either content mode."""
    if _header(headers, "ce_specversion") is not None:
        event: dict[str, Any] = {}
        for k, v in headers:
            if k.lower().startswith("ce_"):
                try:
                    event[k[3:].lower()] = v.decode("utf-8")
                except (UnicodeDecodeError, AttributeError):
                    raise Rejected("invalid_cloudevent", f"header {k} is not UTF-8") from None
        ct = _header(headers, "content-type")
        if ct is not None:
            event["datacontenttype"] = ct.decode("utf-8", "replace")
        event["data"] = _json(value, "record value (binary-mode data)")
        return event
    event = _json(value, "record value")
    if not isinstance(event, dict):
        raise Rejected("invalid_cloudevent", "record value is JSON but not an object")
    if "specversion" not in event and "type" not in event:
        raise Rejected("invalid_cloudevent", "record has neither ce_specversion headers nor a structured CloudEvent")
    return event


def parse(key: bytes | None, value: bytes | None, headers, schemas: Schemas) -> Event:
    """Kafka record -> Decision or BatchClosed. Raises Rejected with a contract reason."""
    event = to_cloudevent(key, value, headers)
    try:
        _validate(schemas.envelope, event, "event")
    except Rejected as r:
        raise Rejected("invalid_cloudevent", r.message) from None
    etype = event["type"]
    if etype not in (DECIDED, BATCH_CLOSED):
        raise Rejected("unsupported_type", f"event type '{etype[:100]}' is not one this service consumes "
                                           f"({DECIDED}, {BATCH_CLOSED})")
    if "data" not in event or event["data"] is None:
        raise Rejected("schema_violation", "event.data: missing")
    data = event["data"]
    _validate(schemas.by_type[etype], data, "data")
    bad = _unprintable_field(data, "data")
    if bad:
        raise Rejected("schema_violation", f"{bad}: holds a control character that a document cannot print")
    try:
        court_key = key.decode("utf-8") if key is not None else None
    except UnicodeDecodeError:
        court_key = None
    if etype == DECIDED:
        code = data["court"]["code"]
        if court_key != code:
            raise Rejected("key_mismatch", f"record key must be the court code data.court.code ({code})")
        return Decision(decision_id=data["decision_id"], court_code=code, batch_id=data.get("batch_id") or None,
                        relief=data["relief"], data=data)
    code = data["court_code"]
    if court_key != code:
        raise Rejected("key_mismatch", f"record key must be the court code data.court_code ({code})")
    return BatchClosed(court_code=code, batch_id=data["batch_id"], expected_count=data.get("expected_count"),
                       reason=data.get("reason") or "upstream", volume=data.get("volume"))


def cloudevent(etype: str, event_id: str, source: str, time: str, data: dict[str, Any]) -> dict[str, Any]:
    """A structured-mode CloudEvent (the notification, and the service's own batch markers)."""
    return {"specversion": "1.0", "id": event_id, "source": source, "type": etype, "time": time,
            "datacontenttype": "application/json", "data": data}
