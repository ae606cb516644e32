"""The error hierarchy: one place that says what can go wrong and what happens then.

- ConfigError: bad usage or configuration; the command exits 2 naming the setting.
- Rejected: an input record that cannot be used; it goes to the DLQ with `reason`.
- BatchFailed: a batch that no retry can fix (a template error, an object the store
  refuses); its records go to the DLQ with `reason` (`render_failed`, `convert_failed`,
  `store_failed`), other batches go on.
- Transient: a dependency is down or slow (broker, S3, LibreOffice); retried with backoff,
  never dropped.
- Permanent: the object store answered, and refused in a way that asking again cannot change
  (access denied, a key it cannot hold, a disabled KMS key); never retried: the batch being
  filed fails as `store_failed`.

Messages never carry personal data: they name fields and decision ids, never values.
"""

from service.text import safe_text

MESSAGE_LIMIT = 4000  # characters; the DLQ header cuts again to its own limit


class ReliefdocsError(Exception):
    """Base class of the service's own errors."""


class ConfigError(ReliefdocsError):
    def __init__(self, setting: str, message: str):
        super().__init__(f"{setting}: {message}")
        self.setting = setting


class Failure(ReliefdocsError):
    """Something that goes to the DLQ: `reason` is a stable code from the contract (DLQ_REASONS),
    the message is made safe to encode and print (service.text.safe_text) whatever it was given."""

    def __init__(self, reason: str, message: str):
        message = safe_text(message, MESSAGE_LIMIT)
        super().__init__(message)
        self.reason = reason
        self.message = message


class Rejected(Failure):
    """A record that cannot be used: it alone is dead-lettered."""


class BatchFailed(Failure):
    """A batch that cannot be filed whatever we retry (a template error, a store that refuses):
    every record of the batch is dead-lettered."""


class Transient(ReliefdocsError):
    """A dependency failed in a way that a later attempt may not (outage, timeout, crash)."""

    def __init__(self, dependency: str, message: str):
        super().__init__(f"{dependency}: {message}")
        self.dependency = dependency


class Permanent(ReliefdocsError):
    """The object store refused an operation for good. `code` is the store's error code
    (`AccessDenied`, `KeyTooLongError`, `ENAMETOOLONG`...); `operation` says what was asked
    (`put bundle.pdf`). Neither carries a value of a record."""

    def __init__(self, dependency: str, operation: str, code: str):
        super().__init__(f"{dependency}: {operation} refused: {code}")
        self.dependency = dependency
        self.operation = operation
        self.code = code


# Every reason a dead letter can carry (the contract's enum, docs/asyncapi.yaml; a test keeps them equal).
RECORD_REASONS = ("too_large", "invalid_json", "invalid_cloudevent", "unsupported_type", "schema_violation",
                  "key_mismatch", "inconsistent_decision", "unknown_court", "conflicting_duplicate")
BATCH_REASONS = ("render_failed", "convert_failed", "store_failed")
DLQ_REASONS = RECORD_REASONS + BATCH_REASONS + ("internal_error",)
