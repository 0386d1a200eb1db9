"""The merger of trainer shards: sum the partitions' newest states into the model's chain.

Each partition of ``page-views`` is learned into a namespace of its own
(:func:`partition_namespace`), by the ordinary :class:`~streams.trainer.loop.Trainer`
(its snapshots, deltas, lease and offsets: exactly once per partition). The merger reads
each partition's ``current`` version, loads what changed (a delta applies to the state it
holds) and publishes :func:`~online_model.models.shard_merge.merge_states` of them as a
full snapshot of the model's own namespace, with ``origin="trainer"`` and the partitions'
offsets: scorers, experiments, lifecycle tools and ``models status`` see one trainer's
chain. It runs where the model's :class:`~streams.state.lease.TrainerLease` is held, so
one merger publishes at a time and a plain trainer cannot run beside shards.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any

from online_model.errors import ConfigurationError, SnapshotError, StreamrecError
from online_model.models.covisit.model import Covisitation
from online_model.models.merged_chain import MergedChain
from online_model.models.shard_merge import merge_states
from online_model.persist.model_file import ModelImage
from online_model.persist.snapshot import Snapshot, SnapshotMeta
from online_model.persist.snapshot_delta import ChainPosition
from online_model.state import ModelState
from streams.errors import StoreUnavailable
from streams.state.snapshot_store import SnapshotStore
from streams.state.trainer_status import STATUS_INTERVAL_S, TrainerStatus
from streams.trainer.loop import Published

logger = logging.getLogger(__name__)


def partition_namespace(model_name: str, partition: int) -> str:
    """The namespace one partition's part of ``model_name`` is learned in: its keys are
    those of any namespace (:class:`~streams.state.keys.ModelKeys`), under the model's
    prefix, so the model's ACL patterns cover them.

    >>> partition_namespace("default", 2)
    'default:part-2'
    """
    return f"{model_name}:part-{partition}"


class ShardMerger:
    """Publishes the merge of the partitions' newest snapshots to ``store``.

    Parameters
    ----------
    store
        The model's own snapshot store (what scorers serve).
    partition_stores
        Partition id -> the store its part is published to.
    cls, params
        The model's class and constructor parameters (the merged model's).
    topic
        The topic whose partitions these are (the merged snapshot's offsets).
    status
        Where the model's trainer status goes (``streamrec models status``).
    min_gap
        Least seconds between two merges (each one is a full snapshot that scorers load;
        twice that while a partition is behind the log): partitions publishing at
        different moments are merged together.
    full_every
        Deltas published between two full snapshots (co-visitation: a delta carries the
        rows the partitions changed since the previous merge).
    local
        Partition id -> what a partition trainer of this process published last (None:
        not learned here): when it is the partition's ``current``, its state is taken
        as it is instead of being read back from Redis and applied again.
    """

    def __init__(
        self,
        store: SnapshotStore,
        partition_stores: Mapping[int, SnapshotStore],
        cls: type,
        params: Mapping[str, Any],
        topic: str,
        status: TrainerStatus | None = None,
        min_gap: float = 0.0,
        full_every: int = 20,
        local: Callable[[int], Published | None] | None = None,
    ) -> None:
        self.store = store
        self.partition_stores = dict(partition_stores)
        self.cls = cls
        self.params = dict(params)
        self.topic = topic
        self.status = status
        self.min_gap = min_gap
        self.full_every = full_every
        self.local = local
        self.deltas_published = 0
        self._chain: ChainPosition | None = None
        self._merged = MergedChain(self.params) if cls is Covisitation else None
        self._last_merge = 0.0
        self._cost = 0.0  # seconds a merge and its publish take, smoothed
        #: Whether a partition is behind the log (its trainer's status says so).
        self.catching_up = False
        self.held: dict[int, Snapshot] = {}
        self.merges_published = 0
        self.last_version: int | None = None
        self.started_at = time.time()
        self._next_status = 0.0
        self._checked_origin = False

    #: Merging takes at most this share of the merger's time once the partitions have
    #: caught up with the log, and :attr:`MAX_MERGE_SHARE_BEHIND` while one of them is
    #: behind (a merge of a model still catching up is worth less than the CPU it
    #: takes from learning). A merge is O(model) (every row of every partition, then a
    #: full snapshot): a large model is merged less often than every ``min_gap``.
    MAX_MERGE_SHARE = 0.5
    MAX_MERGE_SHARE_BEHIND = 0.1

    def check_model(self) -> None:
        """Refuse a namespace whose newest trainer snapshot was not made by shards (a plain
        trainer's model cannot be split into partitions), or holds another class."""
        if self._checked_origin:
            return
        newest = self.store.newest_version_hint("trainer")
        if newest is not None:
            meta = self.store.read_meta(newest)
            if "partitions" not in meta.extra:
                raise ConfigurationError(
                    f"model {self.store.model_name!r} was learned by a single trainer "
                    f"(version {newest}); trainer shards learn per partition and cannot take "
                    "it over: use another STREAMREC_MODEL_NAME for a sharded model"
                )
        self._checked_origin = True

    def refresh(self) -> bool:
        """Load every partition's newer ``current``; True when something changed."""
        changed = False
        for partition, store in sorted(self.partition_stores.items()):
            version = store.current_version()
            held = self.held.get(partition)
            if version is None or (held is not None and held.meta.version == version):
                continue
            mine = self.local(partition) if self.local is not None else None
            if mine is not None and mine.meta.version < version:
                # Our trainer has just published and not yet handed its state over
                # (it keeps it up to date after the publish): merged next time.
                continue
            if mine is not None and mine.meta.version == version:
                image = ModelImage(self.cls, mine.params, mine.state)
                self.held[partition] = Snapshot(
                    mine.meta, image.blank(), mine.trainer_state, image=image
                )
                changed = True
                continue
            try:
                # The state only: the merge reads arrays, and building each part's
                # model would cost O(model) in Python per publish of a part.
                snap = store.load(version, held=held, build=False)
            except SnapshotError as exc:
                logger.warning(
                    "partition snapshot not merged partition=%d version=%d error=%r",
                    partition,
                    version,
                    str(exc),
                )
                continue
            if type(snap.model) is not self.cls or snap.image is None:
                raise ConfigurationError(
                    f"partition {partition} of {self.store.model_name} holds a "
                    f"{type(snap.model).__name__}, not a {self.cls.__name__}"
                )
            self.held[partition] = snap
            changed = True
        return changed

    def merge(self, force: bool = False) -> int | None:
        """Publish the merge of the held partition snapshots when any changed and one is
        due (``force``: whenever any changed); returns the version (None: nothing new or
        not due, or Redis unavailable)."""
        behind = self.catching_up
        share = self.MAX_MERGE_SHARE_BEHIND if behind else self.MAX_MERGE_SHARE
        gap = max(self.min_gap * (2.0 if behind else 1.0), self._cost / share)
        if not force and time.monotonic() - self._last_merge < gap:
            return None
        try:
            self.check_model()
            if not self.refresh() or not self.held:
                return None
            self._last_merge = time.monotonic()
            started = time.monotonic()
            snap, state, delta = self.merged()
            version = self._publish(snap, state, delta)
            cost = time.monotonic() - started
            self._cost = cost if not self.merges_published else 0.8 * self._cost + 0.2 * cost
        except StoreUnavailable as exc:
            logger.warning("merged snapshot not published error=%r", str(exc))
            return None
        self.merges_published += 1
        self.last_version = version
        return version

    def restart_chain(self) -> None:
        """Publish a full merge next (this shard just took the model's lease: another
        merger may have published since our last merge)."""
        self._chain = None
        if self._merged is not None:
            self._merged = MergedChain(self.params)

    def _publish(self, snap: Snapshot, state: ModelState, delta: ModelState | None) -> int:
        """Publish a delta after our previous publish when there is one and the chain
        allows (``full_every``), else a full snapshot."""
        chain = self._chain
        if delta is not None and chain is not None and chain.sequence < self.full_every:
            blank = self.cls(**self.params)  # a delta's file names the class and parameters
            self._chain = self.store.publish_delta(
                snap.meta, blank, delta, chain, snap.trainer_state
            )
            self.deltas_published += 1
        else:
            self._chain = self.store.publish_full(snap, state=state)
        return self._chain.version

    def merged(self) -> tuple[Snapshot, ModelState, ModelState | None]:
        """The merged snapshot of the held partitions, its state, and the delta from the
        previous merge (None: a full merge; only for co-visitation, see
        :mod:`online_model.models.merged_chain`). The snapshot's model is blank: what is
        published is ``state``."""
        held = [self.held[p] for p in sorted(self.held)]
        parts: dict[int, tuple[dict[str, Any], ModelState]] = {}
        for p in sorted(self.held):
            image = self.held[p].image
            assert image is not None
            parts[p] = (image.params, image.state)
        delta = None
        state = None
        if self._merged is not None:
            try:
                state, delta = self._merged.update(parts)
            except (StreamrecError, ValueError, IndexError, KeyError) as exc:  # a bug
                # Merge whole instead, and chain deltas from there.
                logger.error("merged delta not built error=%r", str(exc))
                self.restart_chain()
        if state is None:
            state = merge_states(self.cls, self.params, list(parts.values()))
        # The store encodes ``state`` and needs only the class and parameters of the
        # model: a blank one (building the merged model would be O(model) per merge).
        model = self.cls(**self.params)
        events = sum(s.meta.events_seen for s in held)
        offsets = {
            self.topic: {
                p: s.meta.offsets.get(self.topic, {}).get(p, 0) for p, s in self.held.items()
            }
        }
        metrics: dict[str, float] = {}
        for name in {n for s in held for n in s.meta.metrics}:
            weights = [
                (s.meta.metrics[name], s.meta.events_seen) for s in held if name in s.meta.metrics
            ]
            total = sum(w for _, w in weights)
            metrics[name] = sum(v * w for v, w in weights) / total if total else weights[0][0]
        meta = SnapshotMeta(
            model_name=self.store.model_name,
            created_at=time.time(),
            events_seen=events,
            origin="trainer",
            offsets=offsets,
            metrics=metrics,
            extra={"partitions": {str(p): s.meta.version for p, s in self.held.items()}},
        )
        bad = sum(int(s.trainer_state.get("bad_events", 0)) for s in held)
        return Snapshot(meta, model, {"bad_events": bad}), state, delta

    def report(self, records: list[dict[str, Any]]) -> None:
        """Every few seconds, the model's trainer status: the partitions' records summed."""
        self.catching_up = any(r.get("catching_up") for r in records)
        now = time.monotonic()
        if self.status is None or now < self._next_status:
            return
        self._next_status = now + STATUS_INTERVAL_S
        record: dict[str, Any] = {
            "model_name": self.store.model_name,
            "model_class": self.cls.__name__,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started_at": self.started_at,
            "updated_at": time.time(),
            "events_learned": sum(int(r.get("events_learned", 0)) for r in records),
            "bad_events": sum(int(r.get("bad_events", 0)) for r in records),
            "last_version": self.last_version,
            "catching_up": any(r.get("catching_up") for r in records),
            "stalled": any(r.get("stalled") for r in records),
            "behind": sum(int(r.get("behind", 0) or 0) for r in records),
            "idle_s": max((float(r.get("idle_s", 0) or 0) for r in records), default=0.0),
            "shards": len(self.partition_stores),
        }
        try:
            self.status.write(record)
        except StoreUnavailable as exc:
            logger.debug("merger status not written error=%r", str(exc))


class MixtureReference:
    """The newest merged model, handed to this shard's partition models every
    :attr:`EVERY_S` seconds to learn the popularity weight of the mixture on
    (:meth:`~online_model.models.covisit.model.Covisitation.set_mixture_reference`): a
    part's own graph holds a fraction of the evidence. One copy per shard process."""

    #: Seconds between two loads (each builds the merged graph's dicts: O(model) in
    #: Python), and while a partition of this shard catches up with the log (learning
    #: comes first). The weight follows the reference within a few thousand events;
    #: the merged graph moves little in 30 s.
    EVERY_S = 30.0
    EVERY_BEHIND_S = 60.0

    def __init__(self, store: SnapshotStore) -> None:
        self.store = store
        self.model: Any = None
        self.version: int | None = None
        self._last = -float("inf")  # when the newest merge was last looked for

    def hand_out(self, models: list[Any], behind: bool = False) -> None:
        """Give ``models`` the newest merge, loaded again when it is due."""
        now = time.monotonic()
        if now - self._last >= (self.EVERY_BEHIND_S if behind else self.EVERY_S):
            self._last = now
            try:
                version = self.store.newest_version_hint("trainer")
                if version is not None and version != self.version:
                    model = self.store.load(version).model
                    if isinstance(model, Covisitation):
                        self.model, self.version = model, version
            except (StoreUnavailable, SnapshotError) as exc:
                logger.warning("mixture reference not loaded error=%r", str(exc))
        if self.model is not None:
            for model in models:
                if getattr(model, "_mixture_reference", None) is not self.model:
                    model.set_mixture_reference(self.model)
