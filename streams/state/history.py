"""Users' recent page views and last served lists, in Redis.

The user is represented at serving time by the pages they viewed most recently (a
bounded Redis list with a TTL), so models stay O(items). Alongside it the scorer keeps
the list it last served each user, to count a hit when their next view is in it.

Both are read for a whole batch in one pipelined round trip and written back in
another. When Redis is down, reads degrade to "no history" and writes are skipped; the
misses are counted, and a short back-off keeps each batch from waiting on a connect
timeout. Recovery needs no operator.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from streams.state.connection import REDIS_FAILURES
from streams.state.keys import ModelKeys

log = logging.getLogger(__name__)

_SEP = "\x1f"  # unit separator: page ids may hold commas but not control characters


@dataclass
class UserState:
    """What the scorer knows of each user in a batch."""

    histories: dict[str, list[str]] = field(default_factory=dict)
    served: dict[str, list[str]] = field(default_factory=dict)
    degraded: bool = False
    #: The challenger's last unsent list per user (read only in a shadow experiment).
    shadow_served: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class HistoryUpdate:
    """What a scored batch writes back: pages to append, lists served."""

    appends: dict[str, list[str]] = field(default_factory=dict)
    served: dict[str, list[str]] = field(default_factory=dict)
    shadow_served: dict[str, list[str]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.appends or self.served or self.shadow_served)


class _Breaker:
    """After a Redis failure, skip Redis for ``backoff`` seconds instead of timing out."""

    def __init__(self, backoff: float) -> None:
        self.backoff = backoff
        self.open_until = 0.0
        self.errors = 0

    def allows(self) -> bool:
        return time.monotonic() >= self.open_until

    def failed(self, exc: Exception, what: str) -> None:
        self.errors += 1
        if self.allows():
            log.warning("redis_unavailable op=%s error=%r backoff_s=%.1f", what, exc, self.backoff)
        self.open_until = time.monotonic() + self.backoff

    def succeeded(self) -> None:
        if self.open_until:
            log.info("redis_recovered")
        self.open_until = 0.0


def _decode_list(raw: Iterable[bytes]) -> list[str]:
    return [item.decode() for item in raw]


def _encode_served(items: list[str]) -> str:
    return _SEP.join(items)


def _decode_served(raw: bytes | None) -> list[str]:
    return raw.decode().split(_SEP) if raw else []


class _Plan:
    """Which commands a batch's reads and writes queue on a pipeline."""

    def __init__(self, namespace: str, length: int, ttl_s: int) -> None:
        self.keys = ModelKeys(namespace)
        self.length = length
        self.ttl_s = ttl_s

    def queue_reads(self, pipe: Any, users: list[str], shadow: bool = False) -> None:
        for user in users:
            pipe.lrange(self.keys.history(user), -self.length, -1)
            pipe.get(self.keys.served(user))
        if shadow:
            for user in users:
                pipe.get(self.keys.shadow_served(user))

    def parse_reads(self, users: list[str], results: list[Any]) -> UserState:
        state = UserState()
        for i, user in enumerate(users):
            state.histories[user] = _decode_list(results[2 * i])
            state.served[user] = _decode_served(results[2 * i + 1])
        if len(results) > 2 * len(users):
            tail = 2 * len(users)
            for i, user in enumerate(users):
                state.shadow_served[user] = _decode_served(results[tail + i])
        return state

    def queue_writes(self, pipe: Any, update: HistoryUpdate) -> None:
        for user, pages in update.appends.items():
            key = self.keys.history(user)
            pipe.rpush(key, *pages)
            pipe.ltrim(key, -self.length, -1)
            pipe.expire(key, self.ttl_s)
        for user, items in update.served.items():
            pipe.set(self.keys.served(user), _encode_served(items), ex=self.ttl_s)
        for user, items in update.shadow_served.items():
            pipe.set(self.keys.shadow_served(user), _encode_served(items), ex=self.ttl_s)


class _HistoryStoreBase:
    """What the synchronous and the asyncio store share: keys, breaker, planning."""

    def __init__(
        self,
        client: Any,
        namespace: str,
        length: int = 50,
        ttl_s: int = 30 * 24 * 3600,
        backoff: float = 1.0,
    ) -> None:
        self._client = client
        self._plan = _Plan(namespace, length, ttl_s)
        self._breaker = _Breaker(backoff)

    @property
    def errors(self) -> int:
        return self._breaker.errors

    def _read_pipe(self, users: list[str], shadow: bool = False) -> Any | UserState:
        """A pipeline queued with the reads, or the answer when Redis is not asked."""
        if not users:
            return UserState()
        if not self._breaker.allows():
            return UserState(degraded=True)
        pipe = self._client.pipeline(transaction=False)
        self._plan.queue_reads(pipe, users, shadow)
        return pipe

    def _write_pipe(self, update: HistoryUpdate) -> Any | None:
        if not update or not self._breaker.allows():
            return None
        pipe = self._client.pipeline(transaction=False)
        self._plan.queue_writes(pipe, update)
        return pipe

    def _read_failed(self, exc: Exception) -> UserState:
        self._breaker.failed(exc, "read")
        return UserState(degraded=True)

    def _read_done(self, users: list[str], results: list[Any]) -> UserState:
        self._breaker.succeeded()
        return self._plan.parse_reads(users, results)


class AsyncHistoryStore(_HistoryStoreBase):
    """Pipelined history reads and writes for the asyncio scorer."""

    async def read(self, users: Iterable[str], shadow: bool = False) -> UserState:
        """Histories and served lists of ``users`` (and shadow lists when ``shadow``)."""
        wanted = list(dict.fromkeys(users))
        pipe = self._read_pipe(wanted, shadow)
        if isinstance(pipe, UserState):
            return pipe
        try:
            results = await pipe.execute()
        except REDIS_FAILURES as exc:
            return self._read_failed(exc)
        return self._read_done(wanted, results)

    async def write(self, update: HistoryUpdate) -> bool:
        pipe = self._write_pipe(update)
        if pipe is None:
            return not update
        try:
            await pipe.execute()
        except REDIS_FAILURES as exc:
            self._breaker.failed(exc, "write")
            return False
        self._breaker.succeeded()
        return True


class HistoryStore(_HistoryStoreBase):
    """The same, synchronous: for batch scoring and other transports."""

    def read(self, users: Iterable[str], shadow: bool = False) -> UserState:
        wanted = list(dict.fromkeys(users))
        pipe = self._read_pipe(wanted, shadow)
        if isinstance(pipe, UserState):
            return pipe
        try:
            results = pipe.execute()
        except REDIS_FAILURES as exc:
            return self._read_failed(exc)
        return self._read_done(wanted, results)

    def write(self, update: HistoryUpdate) -> bool:
        pipe = self._write_pipe(update)
        if pipe is None:
            return not update
        try:
            pipe.execute()
        except REDIS_FAILURES as exc:
            self._breaker.failed(exc, "write")
            return False
        self._breaker.succeeded()
        return True
