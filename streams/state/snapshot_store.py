"""Signed model snapshots in Redis, versioned, with an operator-controlled ``current``.

Key layout, all under ``streamrec:<model_name>:``:

``snap:<version>``
    The signed snapshot bytes (:mod:`online_model.persist.snapshot`); the header repeats the
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
``deltas``
    Hash version -> the version it applies to, for delta versions only
    (:mod:`online_model.persist.snapshot_delta`): an unauthenticated hint that pruning follows so
    that it never deletes what a kept delta builds on.
``experiment-results``
    Hash ``<version>:<experiment id>`` -> JSON: the outcome of a finished experiment
    (decision, per-arm served quality) beside each version that served in it
    (:mod:`streams.experiment.results`); an unsigned report, pruned with the version.
``trainer-lease``
    Token of the one trainer allowed to learn this model (:mod:`streams.state.lease`).
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
* At most ``keep`` versions are kept, plus what the kept deltas build on (their chain
  back to a full snapshot); ``current`` and the newest trainer version (which a
  restarting trainer resumes from) are never pruned.
* A delta version is a version like the others: :meth:`load` materialises it (its full
  base plus the deltas up to it, each verified, each applied only to the version it
  names), so loading, promoting, rolling back to or following a delta version serves
  exactly the model the trainer had when it published it. A scorer passes the snapshot
  it holds, and only the deltas after it are read and applied; after a gap (what it
  holds is not on the chain) it is materialised from the base.

Redis connection failures surface as :class:`StoreUnavailable`.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any, cast

from online_model.base import Recommender
from online_model.errors import SnapshotError
from online_model.persist.snapshot import (
    Snapshot,
    SnapshotFormatError,
    SnapshotMeta,
    dump_snapshot,
    export_safetensors,
    load_snapshot,
    read_meta,
    verified_parts,
)
from online_model.persist.snapshot_delta import (
    ChainPosition,
    SnapshotDelta,
    apply_delta,
    dump_delta,
    is_delta,
    read_delta,
)
from online_model.state import ModelState
from streams.state.connection import is_cluster, redis_errors
from streams.state.keys import ModelKeys

logger = logging.getLogger(__name__)

# KEYS: snap, current, pinned, versions, origins, deltas
# ARGV: body, version, created_at, origin, make_current ("1"/"0"), channel,
#       the version a delta applies to ("" for a full snapshot)
_PUBLISH = """
redis.call('SET', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[2])
redis.call('HSET', KEYS[5], ARGV[2], ARGV[4])
if ARGV[7] ~= '' then redis.call('HSET', KEYS[6], ARGV[2], ARGV[7]) end
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

# KEYS: current, versions, origins, deltas, experiment-results
# ARGV: snap key prefix, versions to delete...
_PRUNE = """
local cur = redis.call('GET', KEYS[1])
local doomed = {}
local n = 0
for i = 2, #ARGV do
  if ARGV[i] ~= cur then
    redis.call('DEL', ARGV[1] .. ARGV[i])
    redis.call('ZREM', KEYS[2], ARGV[i])
    redis.call('HDEL', KEYS[3], ARGV[i])
    redis.call('HDEL', KEYS[4], ARGV[i])
    doomed[ARGV[i]] = true
    n = n + 1
  end
end
if n > 0 then
  for _, field in ipairs(redis.call('HKEYS', KEYS[5])) do
    local version = string.match(field, '^(%d+):')
    if version and doomed[version] then redis.call('HDEL', KEYS[5], field) end
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
        HMAC key (see :func:`online_model.persist.snapshot.signing_key`).
    keep
        How many versions to keep (current and the newest trainer version always are).
    allow_pickle
        Whether snapshots may hold pickles (user River models, format 1): the
        ``STREAMREC_ALLOW_PICKLE`` setting (default: no).
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
        self.keys = ModelKeys(model_name, is_cluster(redis))
        self.allow_pickle = allow_pickle
        self.rejected = 0  # snapshots that failed verification or loading, for metrics
        self.last_published_bytes = 0  # size of the newest publish, for the trainer
        self._publish = redis.register_script(_PUBLISH)
        self._set_current = redis.register_script(_SET_CURRENT)
        self._prune = redis.register_script(_PRUNE)

    # -- writing ------------------------------------------------------------------------
    @redis_errors
    def publish(self, snap: Snapshot, make_current: bool = True) -> int:
        """Sign and store ``snap`` under a new version; return the version.

        ``current`` moves to it when ``make_current``, it is newer than ``current`` and
        ``current`` is not pinned. ``snap.meta`` gets the version, the model name and a
        ``created_at`` if it had none.
        """
        return self.publish_full(snap, make_current).version

    @redis_errors
    def publish_full(
        self, snap: Snapshot, make_current: bool = True, state: ModelState | None = None
    ) -> ChainPosition:
        """:meth:`publish`, returning where the next delta chains to; ``state`` is the
        model's ``state_arrays()`` when the caller already has it."""
        version = int(self.redis.incr(self.keys.version_seq))
        position = self._store_version(snap, version, make_current, state)
        self._prune_old()
        return position

    def _store_version(
        self,
        snap: Snapshot,
        version: int,
        make_current: bool,
        state: ModelState | None = None,
    ) -> ChainPosition:
        meta = self._stamped(snap.meta, version)
        data = dump_snapshot(
            Snapshot(meta, snap.model, snap.trainer_state),
            self._key,
            allow_pickle=self.allow_pickle,
            state=state,
        )
        self._put(data, meta, make_current, previous=None)
        return ChainPosition.after(read_meta(data, self._key), None)

    @redis_errors
    def publish_delta(
        self,
        meta: SnapshotMeta,
        model: Recommender,
        changes: ModelState,
        after: ChainPosition,
        trainer_state: dict[str, Any],
        make_current: bool = True,
    ) -> ChainPosition:
        """Sign and store the delta ``changes`` of ``model`` (its
        :meth:`~online_model.state.TracksChanges.state_delta`) as a new version that
        applies to ``after``'s version; ``current`` moves as in :meth:`publish`."""
        version = int(self.redis.incr(self.keys.version_seq))
        meta = self._stamped(meta, version)
        link = after.next_link()
        data = dump_delta(meta, model, changes, link, trainer_state, self._key)
        self._put(data, meta, make_current, previous=after.version)
        self._prune_old()
        return ChainPosition.after(read_meta(data, self._key), link)

    def _stamped(self, meta: SnapshotMeta, version: int) -> SnapshotMeta:
        return dataclasses.replace(
            meta,
            version=version,
            model_name=self.model_name,
            created_at=meta.created_at or time.time(),
        )

    def _put(
        self, data: bytes, meta: SnapshotMeta, make_current: bool, previous: int | None
    ) -> None:
        # Between INCR and this script another writer may publish a newer version; the
        # script then leaves ``current`` alone (versions only move forward).
        version = meta.version
        moved = self._publish(
            keys=self.keys.publish_group(version),
            args=[
                data,
                version,
                meta.created_at,
                meta.origin,
                "1" if make_current else "0",
                self.keys.published_channel,
                "" if previous is None else previous,
            ],
        )
        self.last_published_bytes = len(data)
        logger.info(
            "snapshot published model=%s version=%d origin=%s kind=%s events_seen=%d "
            "bytes=%d current=%s",
            self.model_name,
            version,
            meta.origin,
            "full" if previous is None else f"delta-of-{previous}",
            meta.events_seen,
            len(data),
            bool(moved),
        )

    def _prune_old(self) -> None:
        members = sorted(
            (int(v) for v in self.redis.zrange(self.keys.versions, 0, -1)), reverse=True
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
        # A kept delta needs every version it builds on, back to its full snapshot.
        links = self.delta_hints()
        for v in list(kept):
            while v in links:
                v = links[v]
                kept.add(v)
        doomed = [v for v in members if v not in kept]
        if doomed:
            n = self._prune(
                keys=self.keys.prune_group(),
                args=[self.keys.snapshot_prefix, *doomed],
            )
            logger.info("snapshots pruned model=%s n=%d keep=%d", self.model_name, n, self.keep)

    # -- reading ------------------------------------------------------------------------
    @redis_errors
    def restore_version_seq(self, at_least: int) -> None:
        """After Redis lost its data, hand out versions above ``at_least`` again (a no-op
        while the counter exists), so versions keep moving forward."""
        self.redis.set(self.keys.version_seq, at_least, nx=True)

    @redis_errors
    def origin_hints(self) -> dict[int, str]:
        """Version -> origin as registered at publish (unauthenticated: a hint only)."""
        return {int(v): o.decode() for v, o in self.redis.hgetall(self.keys.origins).items()}

    @redis_errors
    def delta_hints(self) -> dict[int, int]:
        """Delta version -> the version it applies to (unauthenticated: a hint only)."""
        raw = self.redis.hgetall(self.keys.delta_links)
        return {int(v): int(p) for v, p in raw.items()}

    @redis_errors
    def current_version(self) -> int | None:
        """The version scorers should serve, or None before the first publish."""
        raw = self.redis.get(self.keys.current)
        return None if raw is None else int(raw)

    @redis_errors
    def is_pinned(self) -> bool:
        return bool(self.redis.exists(self.keys.pinned))

    @redis_errors
    def _raw(self, version: int) -> bytes:
        data = self.redis.get(self.keys.snapshot(version))
        if data is None:
            raise SnapshotError(f"no snapshot {self.model_name} version {version}")
        return cast(bytes, data)

    def _check_identity(self, meta: SnapshotMeta, version: int) -> None:
        if meta.version != version or meta.model_name != self.model_name:
            raise SnapshotFormatError(
                f"key {self.keys.snapshot(version)} holds {meta.model_name} version {meta.version}"
            )

    def load(self, version: int, held: Snapshot | None = None, build: bool = True) -> Snapshot:
        """Verify and load ``version``; :class:`SnapshotError` if missing or untrusted.

        A delta version is materialised: its chain is read back (each file verified)
        to a full snapshot, or to ``held`` when that is on the chain (a scorer passes the
        snapshot it serves, so only the newer deltas are read), and applied in order.
        A missing version is an error, not a rejection: nothing was there to refuse.
        ``build`` False: the state only, beside a blank model
        (:func:`~online_model.persist.snapshot.load_snapshot`)."""
        data = self._raw(version)
        try:
            try:
                return self._materialise(version, data, held, build)
            except SnapshotError:
                if held is None:
                    raise
                # ``held`` did not fit the chain after all: build it from its base.
                return self._materialise(version, data, None, build)
        except SnapshotError as exc:
            self.rejected += 1
            logger.warning(
                "snapshot rejected model=%s version=%d error=%r", self.model_name, version, str(exc)
            )
            raise

    #: Longest chain of deltas read back (the trainer writes a full one every
    #: ``STREAMREC_SNAPSHOT_FULL_EVERY`` deltas); a bound against a planted loop.
    MAX_CHAIN = 10_000

    def _materialise(
        self, version: int, data: bytes, held: Snapshot | None, build: bool = True
    ) -> Snapshot:
        chain: list[SnapshotDelta] = []
        start: Snapshot | None = None
        while True:
            _, header, _ = verified_parts(data, self._key)
            if not is_delta(header):
                start = load_snapshot(data, self._key, self.allow_pickle, build=build and not chain)
                self._check_identity(start.meta, version)
                break
            delta = read_delta(data, self._key)
            self._check_identity(delta.meta, version)
            chain.append(delta)
            previous = delta.link.previous_version
            if previous >= version or len(chain) > self.MAX_CHAIN:
                raise SnapshotFormatError(
                    f"delta version {version} names version {previous} as its previous"
                )
            if held is not None and held.meta.version == previous:
                start = held
                break
            version = previous
            try:
                data = self._raw(version)
            except SnapshotError as exc:
                raise SnapshotFormatError(
                    f"delta version {delta.meta.version} builds on version {version}, which is gone"
                ) from exc
        # Only the last state is built into a model: each of a chain's states is O(model)
        # to build in Python.
        for i, delta in enumerate(reversed(chain)):
            start = apply_delta(start, delta, build=build and i == len(chain) - 1)
        return start

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

    def full_bytes(self, version: int) -> bytes:
        """The signed bytes of ``version`` as a full snapshot: as stored for a full one,
        materialised and signed as a full snapshot for a delta."""
        data = self.verified_bytes(version)
        if is_delta(verified_parts(data, self._key)[1]):
            data = dump_snapshot(self.load(version), self._key, allow_pickle=self.allow_pickle)
        return data

    def export_safetensors(self, version: int) -> bytes:
        """``version``'s model as a plain ``.safetensors`` file (see
        :func:`online_model.persist.snapshot.export_safetensors`)."""
        return export_safetensors(self.full_bytes(version), self._key, self.allow_pickle)

    def load_current(self) -> Snapshot | None:
        """The snapshot ``current`` points at, or None when there is none yet."""
        version = self.current_version()
        return None if version is None else self.load(version)

    @redis_errors
    def versions(self) -> list[int]:
        """Kept versions, newest first."""
        return sorted((int(v) for v in self.redis.zrange(self.keys.versions, 0, -1)), reverse=True)

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

    @redis_errors
    def newest_version_hint(self, origin: str) -> int | None:
        """Newest kept version recorded as ``origin`` (unverified: a hint, one HGETALL)."""
        hints = self.redis.hgetall(self.keys.origins)
        matching = [int(v) for v, o in hints.items() if o.decode() == origin]
        return max(matching) if matching else None

    @redis_errors
    def latest(self, origin: str | None = None) -> Snapshot | None:
        """The newest snapshot that verifies (of ``origin`` if given), or None."""
        hints = self.origin_hints()
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
            keys=self.keys.set_current_group(version),
            args=[version, "1" if pin else "0", self.keys.published_channel],
        )
        if not ok:
            raise SnapshotError(f"snapshot {self.model_name} version {version} disappeared")
        logger.info("current moved model=%s version=%d pinned=%s", self.model_name, version, pin)

    @redis_errors
    def promote(self, version: int) -> None:
        """Point ``current`` at ``version`` and pin it; refused unless it verifies and loads."""
        self.load(version)
        self._point_current(version, pin=True)

    @redis_errors
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

    @redis_errors
    def follow(self) -> int | None:
        """Clear the pin; point ``current`` at the newest trainer version (if any).

        Returns the new current version (None when there is no trainer version yet; the
        pin is cleared anyway, so the trainer's next publish becomes current).
        """
        snap = self.latest(origin="trainer")
        if snap is None:
            self.redis.delete(self.keys.pinned)
            logger.info("current unpinned model=%s version=None", self.model_name)
            return None
        self._point_current(snap.meta.version, pin=False)
        return snap.meta.version
