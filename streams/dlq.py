"""Dead letters: an input the scorer could not use, carried as data with its error.

The original key and value go to ``page-views.dlq`` untouched, with headers naming the
error and where the message came from, so an operator can fix and re-produce it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol


class InputMessage(Protocol):
    """The parts of a Kafka message the scorer reads (plain fakes work in unit tests)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


@dataclass(frozen=True)
class RawMessage:
    """A plain :class:`InputMessage`."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True)
class DeadLetter:
    """One refused input and why."""

    message: InputMessage
    error: Exception

    @property
    def reason(self) -> str:
        return str(getattr(self.error, "reason", type(self.error).__name__))

    def headers(self) -> list[tuple[str, bytes]]:
        m = self.message
        return [
            ("streamrec.error.class", type(self.error).__name__.encode()),
            ("streamrec.error.reason", self.reason.encode()),
            ("streamrec.error.message", str(self.error)[:1000].encode("utf-8", "replace")),
            ("streamrec.original.topic", m.topic.encode()),
            ("streamrec.original.partition", str(m.partition).encode()),
            ("streamrec.original.offset", str(m.offset).encode()),
            ("streamrec.dead_lettered_at", str(int(time.time() * 1000)).encode()),
        ]
