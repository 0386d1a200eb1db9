"""Errors of the Kafka- and Redis-facing half; all derive from :class:`StreamrecError`
(:mod:`online_model.errors` holds the root and the model-facing members).

Each decode failure has its own class so a dead-letter record can name it, and each
carries ``reason``: a short machine-readable tag used in DLQ headers and metrics.
"""

from __future__ import annotations

from online_model.errors import ConfigurationError, StreamrecError

__all__ = [
    "BadMagicByte",
    "BadRule",
    "ConfigurationError",
    "CorruptBody",
    "DecodeError",
    "KeyMismatch",
    "LeaseLost",
    "MessageTooLarge",
    "MessageTooShort",
    "ProducerFailed",
    "SchemaRegistryError",
    "SchemaViolation",
    "SerializationError",
    "ServiceError",
    "StoreUnavailable",
    "StreamrecError",
    "UnknownSchemaId",
]


class SerializationError(StreamrecError):
    """A record could not be encoded or decoded."""

    reason = "serialization"


class SchemaViolation(SerializationError):
    """The record does not satisfy the schema (missing field, wrong type, empty id)."""

    reason = "schema_violation"


class BadRule(SchemaViolation):
    """A per-request rule (category or exclude) is malformed: empty, too long or too many."""

    reason = "bad_rule"


class DecodeError(SerializationError):
    """Bytes read from a topic are not a valid event."""

    reason = "decode"


class MessageTooShort(DecodeError):
    reason = "too_short"


class MessageTooLarge(DecodeError):
    reason = "too_large"


class BadMagicByte(DecodeError):
    reason = "bad_magic_byte"


class UnknownSchemaId(DecodeError):
    reason = "unknown_schema_id"


class CorruptBody(DecodeError):
    reason = "corrupt_body"


class KeyMismatch(DecodeError):
    """The message key is not the event's user_id, so per-user ordering is not kept."""

    reason = "key_mismatch"


class SchemaRegistryError(StreamrecError):
    """The schema registry could not be reached or refused a request."""


class ServiceError(StreamrecError):
    """An embedded or external service could not be started, reached or stopped."""


class ProducerFailed(ServiceError):
    """The producer hit a fatal error; nothing more can be sent through it."""


class StoreUnavailable(StreamrecError):
    """Redis could not be reached; the caller keeps what it has and retries later."""


class LeaseLost(StreamrecError):
    """Another trainer holds the lease of this model: this one must stop learning."""
