"""Signed model snapshots in Redis, versioned, with an operator-controlled ``current``.

Key layout, all under ``streamrec:<model_name>:``:

``snap:<version>``
    The signed snapshot bytes (:mod:`online_model.snapshot`); the header repeats the
    version and model name, and :meth:`SnapshotStore.load` refuses a body stored under
    another version or model (a copied key is not a way to roll back).
``version_seq``
    ``INCR`` counter handing out versions; versions are never reused.
``current``
    The version scorers serve (an int). Scorers poll it (one ``GET``) and also listen on
    the channel.
``pinned``
    ``"1"`` while an operator's choice (:meth:`promote`, :meth:`rollback`) holds ``current``.
``versions``
    Sorted set, member = version, score = ``created_at``: what is kept.
``origins``
    Hash version -> origin (``trainer``, ``replay``, ...): an unauthenticated hint used to
    find candidates and to prune; whatever is loaded is verified.
``trainer-lease``
    Token of the one trainer allowed to learn this model (:class:`TrainerLease`).
channel ``published``
    Each publish and each move of ``current`` sends the version concerned (a hint only:
    listeners read ``current``).

Semantics:

* :meth:`SnapshotStore.publish` writes the body, registers it and moves ``current`` in one
  Lua script (atomic): ``current`` moves only forward and never while pinned.
* :meth:`promote` verifies (and fully loads) a version before pointing ``current`` at it
  and pins it, so the trainer's next publishes do not undo an operator's choice;
  :meth:`rollback` promotes the newest verifiable version below ``current``;
  :meth:`follow` clears the pin and points ``current`` at the newest trainer version.
* At most ``keep`` versions are kept; ``current`` and the newest trainer version (which a
  restarting trainer resumes from) are never pruned.

Redis connection failures surface as :class:`StoreUnavailable`.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar, cast

import redis as redis_lib

from online_model.errors import SnapshotError, StreamrecError
from online_model.snapshot import (
    Snapshot,
    SnapshotFormatError,
    SnapshotMeta,
    dump_snapshot,
    export_safetensors,
    load_snapshot,
    read_meta,
)

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


class StoreUnavailable(StreamrecError):
    """Redis could not be reached; the caller keeps what it has and retries later."""


def _redis_errors(func: F) -> F:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (redis_lib.ConnectionError, redis_lib.TimeoutError) as exc:
            raise StoreUnavailable(f"redis unavailable: {exc}") from exc

    return cast(F, wrapper)


# KEYS: snap, current, pinned, versions, origins
# ARGV: body, version, created_at, origin, make_current ("1"/"0"), channel
_PUBLISH = """
redis.call('SET', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[2])
redis.call('HSET', KEYS[5], ARGV[2], ARGV[4])
local moved = 0
if ARGV[5] == '1' and redis.call('EXISTS', KEYS[3]) == 0 then
  local cur = tonumber(redis.call('GET', KEYS[2]) or '0')
  if tonumber(ARGV[2]) > cur then
    redis.call('SET', KEYS[2], ARGV[2])
    moved = 1
  end
end
redis.call('PUBLISH', ARGV[6], ARGV[2])
return moved
"""

# KEYS: snap, current, pinned   ARGV: version, pin ("1"/"0"), channel
_SET_CURRENT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('SET', KEYS[2], ARGV[1])
if ARGV[2] == '1' then redis.call('SET', KEYS[3], '1') else redis.call('DEL', KEYS[3]) end
redis.call('PUBLISH', ARGV[3], ARGV[1])
return 1
"""

# KEYS: current, versions, origins   ARGV: snap key prefix, versions to delete...
_PRUNE = """
local cur = redis.call('GET', KEYS[1])
local n = 0
for i = 2, #ARGV do
  if ARGV[i] ~= cur then
    redis.call('DEL', ARGV[1] .. ARGV[i])
    redis.call('ZREM', KEYS[2], ARGV[i])
    redis.call('HDEL', KEYS[3], ARGV[i])
    n = n + 1
  end
end
return n
"""


class SnapshotStore:
    """Versioned, signed snapshots of one model in Redis (see the module docstring).

    Parameters
    ----------
    redis
        A synchronous ``redis.Redis`` (bytes responses, i.e. ``decode_responses=False``).
    model_name
        Namespace of the keys.
    key
        HMAC key (see :func:`online_model.snapshot.signing_key`).
    keep
        How many versions to keep (current and the newest trainer version always are).
    allow_pickle
        Whether snapshots may hold pickles (user River models, format 1); default from
        ``STREAMREC_ALLOW_PICKLE`` (see :func:`online_model.snapshot.pickle_allowed`).
    """

    def __init__(
        self,
        redis: Any,
        model_name: str,
        key: bytes,
        keep: int = 20,
        allow_pickle: bool | None = None,
    ) -> None:
        self.redis = redis
        self.model_name = model_name
        self.keep = keep
        self._key = key
        self.allow_pickle = allow_pickle
        self.prefix = f"streamrec:{model_name}:"
        self.rejected = 0  # snapshots that failed verification or loading, for metrics
        self._publish = redis.register_script(_PUBLISH)
        self._set_current = redis.register_script(_SET_CURRENT)
        self._prune = redis.register_script(_PRUNE)

    # -- keys ---------------------------------------------------------------------------
    def snap_key(self, version: int) -> str:
        return f"{self.prefix}snap:{version}"

    @property
    def channel(self) -> str:
        return f"{self.prefix}published"

    def _k(self, name: str) -> str:
        return self.prefix + name

    # -- writing ------------------------------------------------------------------------
    @_redis_errors
    def publish(self, snap: Snapshot, make_current: bool = True) -> int:
        """Sign and store ``snap`` under a new version; return the version.

        ``current`` moves to it when ``make_current``, it is newer than ``current`` and
        ``current`` is not pinned. ``snap.meta`` gets the version, the model name and a
        ``created_at`` if it had none.
        """
        version = int(self.redis.incr(self._k("version_seq")))
        self._store_version(snap, version, make_current)
        self._prune_old()
        return version

    def _store_version(self, snap: Snapshot, version: int, make_current: bool) -> None:
        # Between INCR and this script another writer may publish a newer version; the
        # script then leaves ``current`` alone (versions only move forward).
        meta = snap.meta
        created_at = meta.created_at or time.time()
        meta = dataclasses.replace(
            meta, version=version, model_name=self.model_name, created_at=created_at
        )
        data = dump_snapshot(
            Snapshot(meta, snap.model, snap.trainer_state),
            self._key,
            allow_pickle=self.allow_pickle,
        )
        moved = self._publish(
            keys=[
                self.snap_key(version),
                self._k("current"),
                self._k("pinned"),
                self._k("versions"),
                self._k("origins"),
            ],
            args=[
                data,
                version,
                created_at,
                meta.origin,
                "1" if make_current else "0",
                self.channel,
            ],
        )
        logger.info(
            "snapshot published model=%s version=%d origin=%s events_seen=%d bytes=%d current=%s",
            self.model_name,
            version,
            meta.origin,
            meta.events_seen,
            len(data),
            bool(moved),
        )

    def _prune_old(self) -> None:
        members = sorted(
            (int(v) for v in self.redis.zrange(self._k("versions"), 0, -1)), reverse=True
        )
        if len(members) <= self.keep:
            return
        protected = set()
        current = self.current_version()
        if current is not None:
            protected.add(current)
        trainer = self.newest_version_hint("trainer")
        if trainer is not None:
            protected.add(trainer)
        kept = {v for v in members if v in protected}
        for v in members:
            if len(kept) >= self.keep:
                break
            kept.add(v)
        doomed = [v for v in members if v not in kept]
        if doomed:
            n = self._prune(
                keys=[self._k("current"), self._k("versions"), self._k("origins")],
                args=[f"{self.prefix}snap:", *doomed],
            )
            logger.info("snapshots pruned model=%s n=%d keep=%d", self.model_name, n, self.keep)

    # -- reading ------------------------------------------------------------------------
    @_redis_errors
    def current_version(self) -> int | None:
        """The version scorers should serve, or None before the first publish."""
        raw = self.redis.get(self._k("current"))
        return None if raw is None else int(raw)

    @_redis_errors
    def is_pinned(self) -> bool:
        return bool(self.redis.exists(self._k("pinned")))

    @_redis_errors
    def _raw(self, version: int) -> bytes:
        data = self.redis.get(self.snap_key(version))
        if data is None:
            raise SnapshotError(f"no snapshot {self.model_name} version {version}")
        return cast(bytes, data)

    def _check_identity(self, meta: SnapshotMeta, version: int) -> None:
        if meta.version != version or meta.model_name != self.model_name:
            raise SnapshotFormatError(
                f"key {self.snap_key(version)} holds {meta.model_name} version {meta.version}"
            )

    def load(self, version: int) -> Snapshot:
        """Verify and load ``version``; :class:`SnapshotError` if missing or untrusted."""
        try:
            snap = load_snapshot(self._raw(version), self._key, self.allow_pickle)
            self._check_identity(snap.meta, version)
        except SnapshotError as exc:
            self.rejected += 1
            logger.warning(
                "snapshot rejected model=%s version=%d error=%r", self.model_name, version, str(exc)
            )
            raise
        return snap

    def read_meta(self, version: int) -> SnapshotMeta:
        """Verify ``version`` and return its metadata (the model is not decoded)."""
        meta = read_meta(self._raw(version), self._key)
        self._check_identity(meta, version)
        return meta

    def verified_bytes(self, version: int) -> bytes:
        """The stored bytes of ``version``, once they verify as that version."""
        data = self._raw(version)
        self._check_identity(read_meta(data, self._key), version)
        return data

    def export_safetensors(self, version: int) -> bytes:
        """``version``'s model as a plain ``.safetensors`` file (see
        :func:`online_model.snapshot.export_safetensors`)."""
        return export_safetensors(self.verified_bytes(version), self._key, self.allow_pickle)

    def load_current(self) -> Snapshot | None:
        """The snapshot ``current`` points at, or None when there is none yet."""
        version = self.current_version()
        return None if version is None else self.load(version)

    @_redis_errors
    def versions(self) -> list[int]:
        """Kept versions, newest first."""
        return sorted((int(v) for v in self.redis.zrange(self._k("versions"), 0, -1)), reverse=True)

    def inspect_versions(self) -> tuple[list[SnapshotMeta], list[tuple[int, str]]]:
        """Kept versions, newest first: (metadata of those that verify, (version, error)
        of those that do not)."""
        good: list[SnapshotMeta] = []
        bad: list[tuple[int, str]] = []
        for version in self.versions():
            try:
                good.append(self.read_meta(version))
            except SnapshotError as exc:
                bad.append((version, str(exc)))
        return good, bad

    def list_versions(self) -> list[SnapshotMeta]:
        """Metadata of the kept versions that verify, newest first (see
        :meth:`inspect_versions` for the ones that do not)."""
        return self.inspect_versions()[0]

    @_redis_errors
    def newest_version_hint(self, origin: str) -> int | None:
        """Newest kept version recorded as ``origin`` (unverified: a hint, one HGETALL)."""
        hints = self.redis.hgetall(self._k("origins"))
        matching = [int(v) for v, o in hints.items() if o.decode() == origin]
        return max(matching) if matching else None

    @_redis_errors
    def latest(self, origin: str | None = None) -> Snapshot | None:
        """The newest snapshot that verifies (of ``origin`` if given), or None."""
        hints = {int(v): o.decode() for v, o in self.redis.hgetall(self._k("origins")).items()}
        for version in self.versions():
            if origin is not None and hints.get(version, origin) != origin:
                continue
            try:
                snap = self.load(version)
            except SnapshotError:
                continue  # logged and counted by load(); an older one may do
            if origin is None or snap.meta.origin == origin:
                return snap
        return None

    # -- operator actions ---------------------------------------------------------------
    def _point_current(self, version: int, pin: bool) -> None:
        ok = self._set_current(
            keys=[self.snap_key(version), self._k("current"), self._k("pinned")],
            args=[version, "1" if pin else "0", self.channel],
        )
        if not ok:
            raise SnapshotError(f"snapshot {self.model_name} version {version} disappeared")
        logger.info("current moved model=%s version=%d pinned=%s", self.model_name, version, pin)

    @_redis_errors
    def promote(self, version: int) -> None:
        """Point ``current`` at ``version`` and pin it; refused unless it verifies and loads."""
        self.load(version)
        self._point_current(version, pin=True)

    @_redis_errors
    def rollback(self) -> int:
        """Promote the newest verifiable version older than ``current``; return it."""
        current = self.current_version()
        if current is None:
            raise SnapshotError(f"{self.model_name} has no current version to roll back from")
        for version in self.versions():
            if version >= current:
                continue
            try:
                self.load(version)
            except SnapshotError:
                continue
            self._point_current(version, pin=True)
            return version
        raise SnapshotError(f"{self.model_name} has no verifiable version older than {current}")

    @_redis_errors
    def follow(self) -> int | None:
        """Clear the pin; point ``current`` at the newest trainer version (if any).

        Returns the new current version (None when there is no trainer version yet; the
        pin is cleared anyway, so the trainer's next publish becomes current).
        """
        snap = self.latest(origin="trainer")
        if snap is None:
            self.redis.delete(self._k("pinned"))
            logger.info("current unpinned model=%s version=None", self.model_name)
            return None
        self._point_current(snap.meta.version, pin=False)
        return snap.meta.version


# KEYS: lease   ARGV: token, ttl_ms. 1 = held and extended, 2 = re-acquired, 0 = lost.
_REFRESH = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 2
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class TrainerLease:
    """The right to learn one model: a Redis key set NX with a TTL, held by a token.

    A trainer that cannot refresh the lease before it expires (killed, partitioned)
    loses it; another trainer then takes over from the newest trainer snapshot.
    """

    def __init__(self, redis: Any, model_name: str, ttl_s: float = 10.0) -> None:
        self.redis = redis
        self.key = f"streamrec:{model_name}:trainer-lease"
        self.ttl_ms = max(1, int(ttl_s * 1000))
        self.token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._refresh = redis.register_script(_REFRESH)
        self._release = redis.register_script(_RELEASE)

    @_redis_errors
    def acquire(self) -> bool:
        """Take the lease if free; True when this trainer holds it."""
        return bool(self.redis.set(self.key, self.token, nx=True, px=self.ttl_ms))

    @_redis_errors
    def holder(self) -> str | None:
        raw = self.redis.get(self.key)
        return None if raw is None else raw.decode()

    @_redis_errors
    def refresh(self) -> bool:
        """Extend the lease; False when another trainer holds it now.

        An expired lease nobody took (e.g. Redis was down for everyone) is re-taken.
        """
        result = int(self._refresh(keys=[self.key], args=[self.token, self.ttl_ms]))
        if result == 2:
            logger.warning("trainer lease re-acquired key=%s token=%s", self.key, self.token)
        return result != 0

    @_redis_errors
    def release(self) -> None:
        self._release(keys=[self.key], args=[self.token])
