"""The root of streamrec's one exception hierarchy, and its model-facing members.

Every error streamrec raises on purpose derives from :class:`StreamrecError`, so callers
can catch the family and still tell the members apart; the Kafka- and Redis-facing
members live in :mod:`streams.errors`. Library errors are wrapped with
``raise ... from exc`` so the cause stays visible.
"""

from __future__ import annotations


class StreamrecError(Exception):
    """Root of every error streamrec raises on purpose."""


class ConfigurationError(StreamrecError):
    """A setting is missing, malformed or contradicts another one."""


class InputError(StreamrecError):
    """A user-supplied file or row cannot be used (the message names the line)."""


class ModelError(StreamrecError):
    """A model name, parameter or state is not usable."""


class SnapshotError(StreamrecError):
    """A snapshot cannot be trusted or loaded; the caller keeps the model it has."""


class SnapshotVerificationError(SnapshotError):
    """The snapshot's MAC does not match: it was not written by a holder of the key."""


class SnapshotFormatError(SnapshotError):
    """The snapshot is truncated, of an unknown format version, or holds refused classes."""
