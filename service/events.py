"""Stage 1: a Kafka record becomes a validated event, or a Rejection for the DLQ.

Both CloudEvents Kafka content modes are read:
- structured: the value is a JSON CloudEvent (header content-type may be absent);
- binary: ce_* headers carry the attributes and the value is the `data` JSON.

Validation uses the JSON Schemas in schemas/ (the contract upstream teams read), named limits
on size, nesting and number length (Limits), and the rules beyond the schema listed in
schemas/README.md (a decision that makes no legal sense is `inconsistent_decision`). Error
messages name fields and rules, never the values they hold: a value may be a person's name.
Whatever its bytes, a record either becomes an event or raises Rejected: nothing else.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import date, datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

import fastjsonschema
from jsonschema import Draft202012Validator

from service.errors import RECORD_REASONS, Rejected

DECIDED = "relief.eligibility.decided.v1"
BATCH_CLOSED = "relief.batch.closed.v1"
BUNDLE_READY = "relief.filing.bundle.ready.v1"
GRANTED = ("dismiss_and_seal", "reduce_to_misdemeanor", "redesignate_infraction")
NOT_FILED = ("not_eligible", "review_required")

# The reasons `parse` rejects a record with: the contract's record reasons (service.errors) but the two
# that need more than the record (the court's folder, the batcher's and ledger's memory), plus a bug.
REASONS = tuple(r for r in RECORD_REASONS if r not in ("unknown_court", "conflicting_duplicate")) + ("internal_error",)

# Characters XML 1.0 cannot hold (a DOCX is XML), and lone surrogates JSON can smuggle in.
_UNPRINTABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


@dataclass(frozen=True)
class Limits:
    """What a record may be at most, before anything else looks at it."""

    max_record_bytes: int = 1024 * 1024  # key + value + header names and values
    max_depth: int = 64  # JSON nesting of arrays and objects
    max_int_digits: int = 20  # a JSON integer with more digits is refused, not parsed

    def __post_init__(self):
        if not 1 <= self.max_depth <= MAX_DEPTH_CEILING:
            raise ValueError(f"max_depth must be from 1 to {MAX_DEPTH_CEILING}")


MAX_DEPTH_CEILING = 200  # validation recurses once per level: deeper would risk Python's recursion limit


def printable(text: str, limit: int = 100) -> str:
    """Text a record supplied (a type, a header or field name), made safe for a message: at most
    `limit` characters, in ASCII with control characters and lone surrogates escaped."""
    out = ascii(text[:limit])[1:-1]
    return out + "..." if len(text) > limit else out


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

    @cached_property  # asked when the batch takes it and again for its ledger entry
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
    """The contract's JSON Schemas, loaded once from a folder.

    Each schema is also compiled into Python (fastjsonschema, from the same file) as a fast
    first check: an instance it accepts is valid (its format checks are jsonschema's own, and
    tests/unit/test_events.py holds the two to the same verdict on every invalid record the
    tests know); one it refuses goes through jsonschema, which gives the message and has the
    last word. `compiled=False` validates with jsonschema alone (the benchmark's "before")."""

    def __init__(self, folder: str | Path, compiled: bool = True):
        self.folder = Path(folder)
        self.compiled = compiled

    def schema(self, name: str) -> dict[str, Any]:
        return json.loads((self.folder / f"{name}.schema.json").read_text(encoding="utf-8"))

    def validator(self, name: str) -> Draft202012Validator:
        schema = self.schema(name)
        Draft202012Validator.check_schema(schema)
        return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)

    def fast(self, name: str) -> Callable[[Any], bool]:
        """The schema compiled: True when the instance is valid, False when jsonschema must look."""
        if not self.compiled:
            return lambda instance: False
        schema = self.schema(name)
        checker = Draft202012Validator.FORMAT_CHECKER
        formats = {f: (lambda value, f=f: checker.conforms(value, f)) for f in _formats(schema)}
        check = fastjsonschema.compile(schema, formats=formats, use_default=False)

        def valid(instance: Any) -> bool:
            try:
                check(instance)
                return True
            except Exception:  # invalid, or anything unforeseen: jsonschema decides
                return False

        return valid

    @cached_property
    def envelope(self) -> Draft202012Validator:
        return self.validator("cloudevent")

    @cached_property
    def by_type(self) -> dict[str, Draft202012Validator]:
        return {t: self.validator(t) for t in (DECIDED, BATCH_CLOSED, BUNDLE_READY)}

    @cached_property
    def fast_envelope(self) -> Callable[[Any], bool]:
        return self.fast("cloudevent")

    @cached_property
    def fast_by_type(self) -> dict[str, Callable[[Any], bool]]:
        return {t: self.fast(t) for t in (DECIDED, BATCH_CLOSED, BUNDLE_READY)}


def _formats(schema: Any) -> set[str]:
    """Every "format" a schema names (so that the compiled check uses jsonschema's checkers)."""
    found: set[str] = set()
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("format"), str):
                found.add(node["format"])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def _path(prefix: str, parts) -> str:
    out = prefix
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else f".{printable(str(p), 64)}"
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


def _validate(validator: Draft202012Validator, instance: Any, prefix: str,
              fast: Callable[[Any], bool] = lambda instance: False) -> None:
    if fast(instance):
        return
    errors = sorted(validator.iter_errors(instance), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise Rejected("schema_violation", _describe(errors[0], prefix) + more)


def _unprintable_field(value: Any, path: str) -> str | None:
    """The path of the first string in `value` holding a character a document cannot print."""
    if not _any_unprintable(value):  # the common case, without building a path per field
        return None
    return _first_unprintable(value, path)


def _any_unprintable(value: Any) -> bool:
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            if _UNPRINTABLE.search(v):
                return True
        elif isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return False


def _first_unprintable(value: Any, path: str) -> str | None:
    if isinstance(value, str):
        return path if _UNPRINTABLE.search(value) else None
    if isinstance(value, dict):
        for k, v in value.items():
            found = _first_unprintable(v, f"{path}.{printable(str(k), 64)}")
            if found:
                return found
    if isinstance(value, list):
        for i, v in enumerate(value):
            found = _first_unprintable(v, f"{path}[{i}]")
            if found:
                return found
    return None


def _header(headers, name: str) -> bytes | None:
    for k, v in headers or ():
        if k == name or k.lower() == name:
            return v
    return None


class _NotJson(Exception):
    """Raised from json.loads hooks: a number the service refuses to read."""


def _int(limit: int):
    def parse_int(text: str) -> int:
        if len(text.lstrip("-")) > limit:
            raise _NotJson(f"an integer has more than {limit} digits")
        return int(text)

    return parse_int


def _constant(name: str) -> float:
    raise _NotJson(f"{name} is not a JSON number")


def _depth(value: Any) -> int:
    """Nesting depth of parsed JSON, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, (dict, list)):
            deepest = max(deepest, d)
            stack.extend((c, d + 1) for c in (v.values() if isinstance(v, dict) else v))
    return deepest


def _json(raw: bytes | None, what: str, limits: Limits = Limits()) -> Any:
    if raw is None:
        raise Rejected("invalid_json", f"{what} is empty (a tombstone or a record without value)")
    def too_deep() -> Rejected:  # built only when needed: a Rejected escapes its message, per character
        return Rejected("invalid_json", f"{what} has nesting deeper than {limits.max_depth}")

    try:
        value = json.loads(raw.decode("utf-8"), parse_int=_int(limits.max_int_digits), parse_constant=_constant)
    except UnicodeDecodeError:
        raise Rejected("invalid_json", f"{what} is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise Rejected("invalid_json", f"{what} is not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except _NotJson as exc:
        raise Rejected("invalid_json", f"{what}: {exc}") from None
    except RecursionError:  # json's C scanner stops itself cleanly at Python's recursion limit
        raise too_deep() from None
    if raw.count(b"[") + raw.count(b"{") > limits.max_depth and _depth(value) > limits.max_depth:
        raise too_deep()
    return value


def _check_size(key: bytes | None, value: bytes | None, headers, limits: Limits) -> None:
    size = len(key or b"") + len(value or b"")
    for k, v in headers or ():
        size += len(k or "") + len(v or b"")
    if size > limits.max_record_bytes:
        raise Rejected("too_large", f"record (key, value and headers) is larger than {limits.max_record_bytes} "
                                    f"bytes (RELIEFDOCS_MAX_RECORD_BYTES)")


def to_cloudevent(key: bytes | None, value: bytes | None, headers, limits: Limits = Limits()) -> dict[str, Any]:
    """Reassemble the CloudEvent of a record in either content mode."""
    if _header(headers, "ce_specversion") is not None:
        event: dict[str, Any] = {}
        for k, v in headers:
            if k.lower().startswith("ce_"):
                try:
                    event[k[3:].lower()] = v.decode("utf-8")
                except (UnicodeDecodeError, AttributeError):
                    raise Rejected("invalid_cloudevent", f"header {printable(k)} is not UTF-8") from None
        ct = _header(headers, "content-type")
        if ct is not None:
            event["datacontenttype"] = ct.decode("utf-8", "replace")
        event["data"] = _json(value, "record value (binary-mode data)", limits)
        return event
    event = _json(value, "record value", limits)
    if not isinstance(event, dict):
        raise Rejected("invalid_cloudevent", "record value is JSON but not an object")
    if "specversion" not in event and "type" not in event:
        raise Rejected("invalid_cloudevent", "record has neither ce_specversion headers nor a structured CloudEvent")
    return event


def parse(key: bytes | None, value: bytes | None, headers, schemas: Schemas, limits: Limits = Limits(),
          today: date | None = None) -> Event:
    """Kafka record -> Decision or BatchClosed. Raises Rejected with a reason in REASONS, and
    nothing else: an unforeseen error is Rejected("internal_error") chained to its cause.
    `today` (default: the UTC date now) is what a date "in the future" is compared with."""
    try:
        return _parse(key, value, headers, schemas, limits, today)
    except Rejected:
        raise
    except Exception as exc:  # a bug must dead-letter one record, never stop a court's filing
        raise Rejected("internal_error", f"validation failed unexpectedly ({type(exc).__name__})") from exc


def _parse(key, value, headers, schemas: Schemas, limits: Limits, today: date | None) -> Event:
    _check_size(key, value, headers, limits)
    event = to_cloudevent(key, value, headers, limits)
    try:
        _validate(schemas.envelope, event, "event", schemas.fast_envelope)
    except Rejected as r:
        raise Rejected("invalid_cloudevent", r.message) from None
    etype = event["type"]
    if etype not in (DECIDED, BATCH_CLOSED):
        raise Rejected("unsupported_type", f"event type '{printable(etype)}' is not one this service consumes "
                                           f"({DECIDED}, {BATCH_CLOSED})")
    if "data" not in event or event["data"] is None:
        raise Rejected("schema_violation", "event.data: missing")
    data = event["data"]
    _validate(schemas.by_type[etype], data, "data", schemas.fast_by_type[etype])
    bad = _unprintable_field(data, "data")
    if bad:
        raise Rejected("schema_violation", f"{bad}: holds a control character that a document cannot print")
    try:
        court_key = key.decode("utf-8") if key is not None else None
    except UnicodeDecodeError:
        court_key = None
    if etype == DECIDED:
        return _decision(data, court_key, today or datetime.now(timezone.utc).date())
    return _batch_closed(data, court_key, limits)


def _decision(data: dict[str, Any], court_key: str | None, today: date) -> Decision:
    code = data["court"]["code"]
    if court_key != code:
        raise Rejected("key_mismatch", f"record key must be the court code data.court.code ({code})")
    check_consistent(data, today)
    return Decision(decision_id=data["decision_id"], court_code=code, batch_id=data.get("batch_id") or None,
                    relief=data["relief"], data=data)


def _batch_closed(data: dict[str, Any], court_key: str | None, limits: Limits) -> BatchClosed:
    code = data["court_code"]
    if court_key != code:
        raise Rejected("key_mismatch", f"record key must be the court code data.court_code ({code})")
    return BatchClosed(court_code=code, batch_id=data["batch_id"],
                       expected_count=_whole(data.get("expected_count"), "data.expected_count", limits),
                       reason=data.get("reason") or "upstream",
                       volume=_whole(data.get("volume"), "data.volume", limits))


def _whole(value: int | float | None, field: str, limits: Limits) -> int | None:
    """JSON Schema's "integer" admits 3.0 and 1e300: keep the int, refuse what has too many digits."""
    if value is None or isinstance(value, int):
        return value
    if abs(value) >= 10 ** limits.max_int_digits:
        raise Rejected("schema_violation", f"{field}: violates maximum integer size ({limits.max_int_digits} digits)")
    return int(value)


# -- rules beyond the schema (schemas/README.md lists them with their messages) -------------------

RELIEF_NEEDS_LEVEL = {"reduce_to_misdemeanor": "felony", "redesignate_infraction": "misdemeanor"}


def _date(value: Any) -> date | None:
    try:
        return date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def check_consistent(data: dict[str, Any], today: date) -> None:
    """Raise Rejected("inconsistent_decision") for a decision that makes no legal sense. The
    message names the rule and the fields, never a value."""
    convictions = data["convictions"]
    needs = RELIEF_NEEDS_LEVEL.get(data["relief"])
    if needs and not any(c.get("level") == needs for c in convictions):
        raise Rejected("inconsistent_decision", f"data.relief: {data['relief']} requires a conviction with "
                                                f"level {needs} in data.convictions")
    born = _date(data["defendant"].get("date_of_birth"))
    if born is not None and born > today:
        raise Rejected("inconsistent_decision", "data.defendant.date_of_birth: is in the future")
    for i, c in enumerate(convictions):
        disposed = _date(c.get("disposition_date"))
        if disposed is None:
            continue
        if disposed > today:
            raise Rejected("inconsistent_decision", f"data.convictions[{i}].disposition_date: is in the future")
        if born is not None and born > disposed:
            raise Rejected("inconsistent_decision", f"data.defendant.date_of_birth: is after "
                                                    f"data.convictions[{i}].disposition_date")


def cloudevent(etype: str, event_id: str, source: str, time: str, data: dict[str, Any]) -> dict[str, Any]:
    """A structured-mode CloudEvent (the notification, and the service's own batch markers)."""
    return {"specversion": "1.0", "id": event_id, "source": source, "type": etype, "time": time,
            "datacontenttype": "application/json", "data": data}
