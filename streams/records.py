"""One record as read from the page-view log, before it is decoded, and how far a reader got.

The trainer (from a consumer group) and replay (from a time range) both read these; the
scorer's input, which also carries a key and headers for dead letters, is
:class:`streams.io.dlq.InputMessage`.
"""

from __future__ import annotations

from typing import NamedTuple

#: topic -> partition -> offset: the next offset to read (what a consumer commits, what a
#: snapshot records it has learned up to).
Offsets = dict[str, dict[int, int]]


class LogRecord(NamedTuple):
    """Where a record is in the log, its undecoded value and, when read, its timestamp
    and key (the catalog needs the key: a tombstone carries nothing else).

    Immutable; a named tuple rather than a frozen dataclass because one is built for
    every record read, and a frozen dataclass takes about 4x as long to build.
    """

    topic: str
    partition: int
    offset: int
    value: bytes | None
    timestamp_ms: int | None = None
    key: bytes | None = None
