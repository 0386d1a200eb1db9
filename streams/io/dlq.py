"""Dead letters: an input the scorer could not use, carried as data with its error.

The original key, value and headers go to ``page-views.dlq`` untouched, followed by
headers naming the error and where the message came from, so an operator can fix and
re-produce it (tracing or app headers included).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

_OURS = "streamrec."


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
    headers: Sequence[tuple[str, bytes]] | None = None


def original_headers(message: Any) -> list[tuple[str, bytes]]:
    """The headers a message came with (a list of pairs or a mapping; absent on fakes),
    without any earlier ``streamrec.*`` error headers, which the new ones replace."""
    raw = getattr(message, "headers", None) or ()
    pairs = raw.items() if isinstance(raw, Mapping) else raw
    out = []
    for name, value in pairs:
        name = name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)
        if name.startswith(_OURS):
            continue
        out.append((name, value if isinstance(value, bytes) else str(value or "").encode()))
    return out


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
            *original_headers(m),
            ("streamrec.error.class", type(self.error).__name__.encode()),
            ("streamrec.error.reason", self.reason.encode()),
            ("streamrec.error.message", str(self.error)[:1000].encode("utf-8", "replace")),
            ("streamrec.original.topic", m.topic.encode()),
            ("streamrec.original.partition", str(m.partition).encode()),
            ("streamrec.original.offset", str(m.offset).encode()),
            ("streamrec.dead_lettered_at", str(int(time.time() * 1000)).encode()),
        ]
