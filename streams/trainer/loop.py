"""The trainer: learn every page view exactly once and publish signed snapshots.

Exactly once, across restarts: a snapshot holds the model together with the offsets it
has consumed up to (the NEXT offset per partition). On start the trainer loads its own
newest snapshot (``origin="trainer"``, not whatever an operator promoted), seeks to those
offsets and continues; events learned after the last snapshot are simply learned again by
the next run from the same offsets, so nothing is learned twice and nothing is skipped.
Kafka commits are made after each publish, for lag monitoring only: the snapshot is the
truth.

Snapshots are full or deltas (:mod:`online_model.persist.snapshot_delta`): a model that tracks
its changes (co-visitation, popularity) publishes only what changed since its previous
snapshot, so a publish costs O(change); a full snapshot is published first after each
start, every ``full_every`` deltas, after a change that touched everything (a decay
rescale), when a delta would be more than half a full one, and when Redis lost the chain.

Only one trainer per model learns: it holds a Redis lease (:class:`~streams.state.snapshot_store.
TrainerLease`); a second trainer waits for it, and a trainer that loses it stops without
publishing (:class:`LeaseLost`).

The loop reads through :class:`EventSource`, a small protocol, so it has no Kafka import;
:mod:`streams.io.event_source` adapts confluent-kafka to it.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from online_model.base import Recommender
from online_model.errors import ConfigurationError, StreamrecError
from online_model.persist.snapshot import Snapshot, SnapshotMeta
from online_model.persist.snapshot_delta import ChainPosition
from online_model.state import (
    ModelState,
    StateNotExportable,
    TracksChanges,
    json_params,
    tracks_deltas,
)
from streams.errors import LeaseLost, StoreUnavailable
from streams.records import LogRecord, Offsets
from streams.state.lease import TrainerLease
from streams.state.snapshot_store import SnapshotStore
from streams.state.trainer_status import STATUS_INTERVAL_S, TrainerStatus
from streams.trainer.catalog_sync import CatalogSync
from streams.trainer.quality_estimate import RollingHitRate

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Published:
    """What the trainer's newest publish holds: its metadata (``version`` stamped), the
    model's parameters and state as published, and the trainer state. For a reader in
    the same process (the merger of trainer shards), instead of loading it back from
    Redis; ``state`` is never modified."""

    meta: SnapshotMeta
    params: dict[str, Any]
    state: ModelState
    trainer_state: dict[str, Any]


class EventSource(Protocol):
    """What the trainer needs from a log (Kafka, or a fake in tests)."""

    def assign(self, offsets: Offsets) -> None:
        """Read every partition; from ``offsets`` (next offset) where given, else the start."""

    def poll(self, max_records: int, timeout: float) -> list[LogRecord]:
        """Up to ``max_records`` events, waiting at most ``timeout`` seconds for the first."""

    def commit(self, offsets: Offsets) -> None:
        """Record progress (monitoring only); failures are logged, not raised."""

    def close(self) -> None: ...

    def partitions(self) -> dict[str, list[int]]: ...


class Trainer:
    """Learn from an :class:`EventSource` and publish snapshots to a :class:`SnapshotStore`.

    Parameters
    ----------
    model
        A fresh model, used when the store holds no snapshot of ``origin`` yet.
    store
        Where snapshots go and where the trainer resumes from.
    source
        The log of page views.
    decode
        Bytes -> record with ``user_id``, ``page_id``, ``ts`` (epoch ms); raises a
        :class:`~online_model.errors.StreamrecError` for a bad event, which is counted and
        skipped (the scorer dead-letters it).
    snapshot_interval
        Seconds between snapshots (a snapshot is only made when something changed).
    origin
        Recorded in each snapshot and used to find the one to resume from.
    lease
        Exclusive right to learn this model; None for tests and single-process tools.
    full_every
        Deltas published between two full snapshots; 0 publishes only full ones.
    catalog_sync
        Pages the catalog deleted or expired, for the model to forget (once per poll,
        free unless the catalog changed); None: the model keeps every page.
    batch_layers
        For a hybrid model: swaps in new batch layers
        (:class:`~streams.trainer.batch_layer_watch.BatchLayerWatcher`); None otherwise.
    status
        Where the trainer says every few seconds that it is alive and whether it learns
        (``streamrec models status``); None: it says nothing.

    Attributes
    ----------
    events_learned, bad_events, snapshots_published, deltas_published, publish_failures,
    last_version
        Counters for metrics (``bad_events`` is cumulative across restarts).
    """

    #: A delta larger than this share of the last full snapshot is published as a full
    #: one instead: it would cost scorers nearly as much to apply, and it ends the chain.
    MAX_DELTA_SHARE = 0.5

    def __init__(
        self,
        model: Recommender,
        store: SnapshotStore,
        source: EventSource,
        decode: Callable[[bytes | None], dict[str, Any]],
        snapshot_interval: float = 0.5,
        origin: str = "trainer",
        lease: TrainerLease | None = None,
        max_records: int = 500,
        poll_timeout: float = 0.2,
        evaluator: RollingHitRate | None = None,
        full_every: int = 20,
        catalog_sync: CatalogSync | None = None,
        batch_layers: Any = None,
        status: TrainerStatus | None = None,
    ) -> None:
        self.model = model
        self.store = store
        self.source = source
        self.decode = decode
        self.snapshot_interval = snapshot_interval
        self.origin = origin
        self.lease = lease
        self.max_records = max_records
        self.poll_timeout = poll_timeout
        self.evaluator = evaluator if evaluator is not None else RollingHitRate()
        self.full_every = full_every
        self.catalog_sync = catalog_sync
        self.batch_layers = batch_layers
        self.status = status
        self._next_status = 0.0
        self._reported_stalled = False
        self._reported_behind = False
        self.started_at = time.time()
        self.offsets: Offsets = {}
        self.events_learned = 0
        self.bad_events = 0
        self.snapshots_published = 0
        self.deltas_published = 0
        self.publish_failures = 0
        self.last_version: int | None = None
        self.resumed_from: int | None = None
        self._dirty = False
        self._last_publish = time.monotonic()
        self._publish_seconds = 0.0  # how long a publish takes, averaged (see _publish_gap)
        self._publishes_timed = 0
        self._last_refresh = 0.0
        # Newest trainer version in the store as far as we know: the one we resumed next
        # to, then each of ours. Anything else appearing means a second trainer.
        self._expected_newest: int | None = None
        # Our newest publish, which the next delta applies to (None: publish a full one).
        self._chain: ChainPosition | None = None
        self._full_bytes = 0
        # Events learned by our previous publish; the events and the size limit of the
        # last delta refused as too large (see _publish_delta).
        self._published_events = 0
        self._refused: tuple[int, float] | None = None
        # When the current run of full polls (the trainer behind the log) began.
        self._behind_since: float | None = None
        # The model's state_arrays() as of our newest publish, for models that track
        # their changes: the next full snapshot is this plus the delta since.
        self._state: ModelState | None = None
        #: Our newest publish when its state is kept (None: not kept, or none yet).
        self.published: Published | None = None

    # -- lifecycle ----------------------------------------------------------------------
    def run(self, stop: threading.Event, on_ready: Callable[[Trainer], None] | None = None) -> None:
        """Learn until ``stop`` is set; then publish a final snapshot, commit and close.

        ``on_ready`` is called once the lease is held, the newest snapshot is loaded and
        the partitions are assigned: from then on events are learned.

        Raises
        ------
        LeaseLost
            Another trainer took over this model (nothing more is published).
        """
        try:
            if not self._acquire_lease(stop):
                return
            if not self._resume(stop):
                return
            self.source.assign(self.offsets)
            logger.info(
                "trainer learning model=%s from=%s offsets=%s",
                self.store.model_name,
                self.resumed_from,
                self.offsets,
            )
            if on_ready is not None:
                on_ready(self)
            while not stop.is_set():
                self.step()
            self._final_publish()
        finally:
            self.source.close()
            if self.status is not None:
                with contextlib.suppress(StoreUnavailable):  # else it expires by itself
                    self.status.clear()
            if self.lease is not None:
                with contextlib.suppress(StoreUnavailable):  # else it expires by itself
                    self.lease.release()

    def _acquire_lease(self, stop: threading.Event) -> bool:
        if self.lease is None:
            return True
        next_log = 0.0
        while not stop.is_set():
            try:
                if self.lease.acquire():
                    self._last_refresh = time.monotonic()
                    logger.info(
                        "trainer lease acquired key=%s token=%s", self.lease.key, self.lease.token
                    )
                    return True
                holder = self.lease.holder()
            except StoreUnavailable as exc:
                holder = f"unknown ({exc})"
            if time.monotonic() >= next_log:
                logger.warning("trainer waiting for lease key=%s holder=%s", self.lease.key, holder)
                next_log = time.monotonic() + 5.0
            stop.wait(min(1.0, self.lease.ttl_ms / 3000))
        return False

    def _resume(self, stop: threading.Event) -> bool:
        """Load the newest own snapshot; retried while Redis is down (starting fresh
        then would learn everything twice)."""
        while not stop.is_set():
            try:
                self._expected_newest = self.store.newest_version_hint(self.origin)
                snap = self.store.latest(origin=self.origin)
                break
            except StoreUnavailable as exc:
                logger.warning("trainer cannot read snapshots yet error=%r", str(exc))
                stop.wait(1.0)
        else:
            return False
        if snap is None:
            logger.info(
                "trainer starting fresh model=%s class=%s",
                self.store.model_name,
                type(self.model).__name__,
            )
            return True
        if type(snap.model) is not type(self.model):
            raise ConfigurationError(
                f"model {self.store.model_name!r} holds a {type(snap.model).__name__} "
                f"(version {snap.meta.version}) but this trainer was asked for a "
                f"{type(self.model).__name__}; use another STREAMREC_MODEL_NAME for a new model"
            )
        self.model = snap.model
        self.offsets = copy.deepcopy(snap.meta.offsets)
        self.bad_events = int(snap.trainer_state.get("bad_events", 0))
        self.resumed_from = self.last_version = snap.meta.version
        logger.info(
            "trainer resumed model=%s version=%d events_seen=%d",
            self.store.model_name,
            snap.meta.version,
            snap.meta.events_seen,
        )
        return True

    # -- the loop -----------------------------------------------------------------------
    def step(self) -> int:
        """One poll, learn, and (when due) publish; returns the events read."""
        self._keep_lease()
        timeout = self.poll_timeout
        if self._dirty:
            # Caught up, a snapshot is due snapshot_interval after the last one: the poll
            # must not wait past that (freshness), the events it missed go in the next.
            due = self._last_publish + self.snapshot_interval - time.monotonic()
            timeout = max(0.0, min(timeout, due))
        events = self.source.poll(self.max_records, timeout)
        if events:
            self._learn(events)
        if self.catalog_sync is not None and self.catalog_sync.prune(self.model):
            self._dirty = True  # forgotten pages leave the next snapshot
        if self.batch_layers is not None and self.batch_layers.check(self.model, self.offsets):
            self._dirty = True  # the next snapshot carries the new batch layer
        # A short poll waited for the log: the trainer has caught up, and publishing
        # costs it no learning, so it publishes every snapshot_interval (freshness).
        now = time.monotonic()
        behind = len(events) >= self.max_records
        if behind:
            gap = self._publish_gap()
            if self._behind_since is None:
                self._behind_since = now
        elif self._behind_since is not None and now - self._behind_since >= self.snapshot_interval:
            # The end of a backlog (a restart, a burst): the model has just caught up
            # with the log, which is worth a snapshot now rather than up to an interval
            # later (while behind, snapshots came at most every _publish_gap()).
            gap = 0.0
            self._behind_since = None
        else:
            gap = self.snapshot_interval
            self._behind_since = None
        if self._dirty and now - self._last_publish >= gap:
            self.publish()
        if self.status is not None and (now >= self._next_status or self._stall_changed()):
            self._report_status(now)
        return len(events)

    @property
    def catching_up(self) -> bool:
        """Whether the trainer is behind the log (its polls come back full)."""
        return self._behind_since is not None

    def status_record(self) -> dict[str, Any]:
        """What the trainer says about itself (see :mod:`streams.state.trainer_status`)."""
        health = getattr(self.source, "health", None)
        return {
            "model_name": self.store.model_name,
            "model_class": type(self.model).__name__,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started_at": self.started_at,
            "updated_at": time.time(),
            "events_learned": self.events_learned,
            "bad_events": self.bad_events,
            "last_version": self.last_version,
            "catching_up": self._behind_since is not None,
            **(health() if callable(health) else {}),
        }

    def _stall_changed(self) -> bool:
        """A stall began or ended, or the trainer fell behind the log or caught up, since
        the last status record: worth saying at once (trainer shards' merger merges less
        often while a partition catches up)."""
        watch = getattr(self.source, "watch", None)
        stalled = bool(getattr(watch, "stalled", False))
        behind = self._behind_since is not None
        changed = (stalled, behind) != (self._reported_stalled, self._reported_behind)
        self._reported_stalled, self._reported_behind = stalled, behind
        return changed

    def _report_status(self, now: float) -> None:
        assert self.status is not None
        self._next_status = now + STATUS_INTERVAL_S
        try:
            self.status.write(self.status_record())
        except StoreUnavailable as exc:  # publishing reports Redis outages already
            logger.debug("trainer status not written error=%r", str(exc))

    def _learn(self, events: Sequence[LogRecord]) -> None:
        """Learn a polled batch in order and move the offsets past it.

        The per-event work is only decode, the quality estimate and ``learn_one``; the
        offsets are moved once per batch (a publish happens between batches only, so the
        model and the offsets it records still match at every publish).
        """
        decode, model, judge = self.decode, self.model, self.evaluator.before_learn
        learn_one = model.learn_one
        learned = 0
        for event in events:
            try:
                record = decode(event.value)
            except StreamrecError as exc:
                self.bad_events += 1
                logger.debug(
                    "bad event skipped topic=%s partition=%d offset=%d error=%r",
                    event.topic,
                    event.partition,
                    event.offset,
                    str(exc),
                )
                continue
            user, page = record["user_id"], record["page_id"]
            judge(model, user, page)
            learn_one(user, page, x={"ts": record["ts"]})
            learned += 1
        self.events_learned += learned
        # Records of a partition come in offset order: the last one of each wins.
        last = {(e.topic, e.partition): e.offset for e in events}
        for (topic, partition), offset in last.items():
            self.offsets.setdefault(topic, {})[partition] = offset + 1
        self._dirty = True

    #: While behind the log, publishing takes at most this share of the trainer's time:
    #: when publishes take long (full snapshots of a large model while catching up,
    #: deltas as large as the model) the next one waits longer than
    #: ``snapshot_interval``, so learning catches up (a snapshot of a model still behind
    #: the log is worth less than the events). The cost is averaged over about five
    #: publishes, so that one full snapshot between cheap deltas delays the next little.
    MAX_PUBLISH_SHARE = 0.1
    _COST_SMOOTHING = 0.2

    def _publish_gap(self) -> float:
        """Seconds from one publish's start to the next while behind the log:
        ``snapshot_interval``, or more when publishing would otherwise take over
        ``MAX_PUBLISH_SHARE`` of the time."""
        # The average starts at 0: divided by the weight its samples have so far, it is
        # not biased low over the first publishes (all full ones while catching up,
        # when it let publishing take a fifth of the time instead of a tenth).
        weight = 1.0 - (1.0 - self._COST_SMOOTHING) ** self._publishes_timed
        cost = self._publish_seconds / weight if weight else 0.0
        return max(self.snapshot_interval, cost / self.MAX_PUBLISH_SHARE)

    def _keep_lease(self) -> None:
        if self.lease is None:
            return
        now = time.monotonic()
        if now - self._last_refresh < self.lease.ttl_ms / 3000:
            return
        try:
            held = self.lease.refresh()
        except StoreUnavailable as exc:
            logger.warning("trainer lease not refreshed error=%r", str(exc))
            return  # keep learning; publishing re-checks the lease
        if not held:
            raise LeaseLost(f"lease {self.lease.key} is held by {self.lease.holder()}")
        self._last_refresh = now

    def publish(self) -> int | None:
        """Publish a snapshot of the model and offsets now; commit the offsets after.

        Returns the version, or None when Redis is unavailable (retried next interval).
        """
        started = self._last_publish = time.monotonic()
        meta = SnapshotMeta(
            model_name=self.store.model_name,
            created_at=time.time(),
            events_seen=self.model.n_events_learned,
            origin=self.origin,
            offsets=copy.deepcopy(self.offsets),
            metrics=self.evaluator.report(),
        )
        trainer_state = {"bad_events": self.bad_events}
        try:
            self._check_still_owner()
            published = self._publish_delta(meta, trainer_state)
            if published is None:
                state = self._full_state()
                published = self.store.publish_full(
                    Snapshot(meta, self.model, trainer_state), state=state
                )
                self._full_bytes = self.store.last_published_bytes
                self._state = state
            else:
                self.deltas_published += 1
        except StoreUnavailable as exc:
            # Changes keep accumulating: the next delta covers this interval too.
            self.publish_failures += 1
            logger.warning(
                "snapshot publish failed failures=%d error=%r", self.publish_failures, str(exc)
            )
            return None
        if tracks_deltas(self.model):
            self.model.mark_published()  # type: ignore[attr-defined]
        cost = time.monotonic() - started
        self._publish_seconds += self._COST_SMOOTHING * (cost - self._publish_seconds)
        self._publishes_timed += 1
        self._chain = published
        self._published_events = self.events_learned
        version = published.version
        self.published = (
            None
            if self._state is None
            else Published(
                dataclasses.replace(meta, version=version),
                json_params(self.model),
                self._state,
                trainer_state,
            )
        )
        self.last_version = self._expected_newest = version
        self.snapshots_published += 1
        self._dirty = False
        self.source.commit(meta.offsets)
        return version

    def _publish_delta(
        self, meta: SnapshotMeta, trainer_state: dict[str, Any]
    ) -> ChainPosition | None:
        """Publish the model's changes since our previous publish, or return None when a
        full snapshot is due (see the module docstring)."""
        chain, model = self._chain, self.model
        if chain is None or chain.sequence >= self.full_every or not tracks_deltas(model):
            return None
        assert isinstance(model, TracksChanges)
        # While catching up, a second's change touches most of the model: the delta is
        # refused, and building it cost about as much as the full snapshot. More events
        # change at least as much, so a delta is not built again while the events since
        # the last publish are as many as the last refused one had, per byte of limit
        # (the limit grows with the model).
        limit = self._full_bytes * self.MAX_DELTA_SHARE
        estimate = getattr(model, "delta_nbytes", None)
        if callable(estimate):
            # The model can tell the size without building the delta: ask it first.
            nbytes = estimate()
            if nbytes is None or nbytes > limit:
                return None
        events = self.events_learned - self._published_events
        refused = self._refused
        if refused is not None and events * refused[1] >= refused[0] * limit:
            return None
        changes = model.state_delta()
        if changes is None:
            return None
        # A delta's size is known only once encoded; the store encodes it, so estimate
        # from its arrays (strings are small next to them) and fall back to a full one.
        size = sum(a.nbytes for a in changes.arrays.values())
        if size > limit:
            self._refused = (events, limit)
            return None
        self._refused = None
        published = self.store.publish_delta(meta, model, changes, chain, trainer_state)
        self._state = self._applied(changes)
        return published

    def _applied(self, changes: ModelState) -> ModelState | None:
        """The published state with ``changes`` applied (None when it is not kept)."""
        if self._state is None:
            return None
        try:
            return type(self.model).apply_state_delta(self._state, changes)  # type: ignore[attr-defined]
        except StreamrecError as exc:  # a bug; full snapshots are then built from scratch
            logger.error("published state not kept up to date error=%r", str(exc))
            return None

    def _full_state(self) -> ModelState | None:
        """The model's ``state_arrays()`` for a full snapshot, kept for the next one.

        A model that tracks its changes gets its full state built from the previous
        publish's state and the delta since (numpy gathers, O(model) in C), instead of
        from its dicts (a Python pass over every row and user); when most of the model
        changed (catching up), from its dicts. None for other models (they encode
        themselves).
        """
        model = self.model
        if not tracks_deltas(model):
            return None
        assert isinstance(model, TracksChanges)
        if self._state is not None:
            estimate = getattr(model, "delta_nbytes", None)
            nbytes = estimate() if callable(estimate) else None
            if nbytes is not None and nbytes <= self._full_bytes * self.MAX_DELTA_SHARE:
                changes = model.state_delta()
                state = None if changes is None else self._applied(changes)
                if state is not None:
                    return state
        try:
            return model.state_arrays()  # type: ignore[attr-defined]
        except StateNotExportable:  # the store's encoder says what can be done about it
            return None

    def _check_still_owner(self) -> None:
        if self.lease is None:
            return
        if not self.lease.refresh():
            raise LeaseLost(f"lease {self.lease.key} is held by {self.lease.holder()}")
        self._last_refresh = time.monotonic()
        # The lease lapsed and came back (Redis outage, partition)? If another trainer
        # published meanwhile, our model is a fork: stop, do not overwrite its progress.
        newest = self.store.newest_version_hint(self.origin)
        if newest is None and self._expected_newest is not None:
            self._store_lost_its_data(self._expected_newest)
            return
        if newest != self._expected_newest:
            raise LeaseLost(
                f"another trainer published version {newest} of {self.store.model_name} "
                f"after version {self._expected_newest}"
            )

    def _store_lost_its_data(self, last_version: int) -> None:
        """No trainer snapshot is left at all: Redis restarted without persistence or was
        flushed. Nobody published since (that would have left one), so this model is the
        newest there is: publish it, with versions that keep moving forward."""
        logger.warning(
            "snapshot store lost its data model=%s last_version=%s; republishing",
            self.store.model_name,
            last_version,
        )
        # ``version_seq`` restarts at 0 in an empty store (see streams.state.snapshot_store).
        self.store.restore_version_seq(last_version)
        self._expected_newest = None
        self._chain = None  # the versions deltas would build on are gone: publish a full one

    def _final_publish(self, attempts: int = 3) -> None:
        for attempt in range(attempts):
            if not self._dirty:
                break
            if self.publish() is not None:
                break
            if attempt + 1 < attempts:
                time.sleep(1.0)
        else:
            if self._dirty:
                logger.error(
                    "final snapshot not published; the next trainer re-learns from version=%s",
                    self.last_version,
                )
        logger.info(
            "trainer stopped model=%s events_learned=%d bad_events=%d snapshots=%d deltas=%d "
            "publish_failures=%d last_version=%s",
            self.store.model_name,
            self.events_learned,
            self.bad_events,
            self.snapshots_published,
            self.deltas_published,
            self.publish_failures,
            self.last_version,
        )
