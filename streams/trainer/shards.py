"""Trainer shards: several processes learn one model, each from its share of partitions.

The unit of state is the partition, not the process (as a Kafka Streams task): each
partition of ``page-views`` is learned by an ordinary :class:`~streams.trainer.loop.Trainer`
into a namespace of its own (:func:`~streams.trainer.merger.partition_namespace`), with
its own model, snapshots (full and deltas), offsets and lease. So everything the trainer
guarantees holds per partition: a partition's state and its next offset are published
together, a shard killed at any point is resumed from them, and the partition lease
keeps two processes from learning one partition. A user's events stay in one partition
(the key is ``user_id``), and so do their recent pages: per-user memory is split by the
number of shards.

A shard ``i/N`` takes the partitions ``p`` with ``p % N == i``. Every shard also runs
the merger (:class:`~streams.trainer.merger.ShardMerger`) when it holds the model's
lease: one of them publishes the merged model, and another takes over within the lease's
TTL when it dies.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from online_model.catalog import Catalog
from online_model.errors import ConfigurationError
from online_model.models.covisit.model import Covisitation
from online_model.models.shard_merge import check_shardable, partition_params
from online_model.persist.snapshot import check_storable
from streams.catalog.follower import CatalogFollower
from streams.errors import StoreUnavailable
from streams.io.codec import page_view_codec
from streams.io.event_source import KafkaEventSource
from streams.io.topics import ensure_topics
from streams.services.probes import require
from streams.settings import Settings
from streams.state.lease import TrainerLease
from streams.state.shard_members import ShardMembers, assign
from streams.state.trainer_status import TrainerStatus
from streams.trainer.catalog_sync import CatalogSync
from streams.trainer.loop import Trainer
from streams.trainer.merger import MixtureReference, ShardMerger, partition_namespace
from streams.trainer.partition_pool import PartitionPool
from streams.trainer.quality_estimate import RollingHitRate
from streams.wiring import snapshot_store, store_for

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShardSpec:
    """Shard ``index`` of ``count`` (it learns the partitions ``p % count == index``), or
    ``auto``: the live shards share the partitions among themselves
    (:mod:`streams.state.shard_members`)."""

    index: int = 0
    count: int = 0

    @classmethod
    def parse(cls, text: str) -> ShardSpec:
        """``"i/N"`` with ``0 <= i < N``, or ``"auto"``.

        >>> ShardSpec.parse("1/2").owns(3), ShardSpec.parse("1/2").owns(4)
        (True, False)
        >>> ShardSpec.parse("auto").auto
        True
        """
        if text.strip() == "auto":
            return cls()
        try:
            index, count = (int(part) for part in text.split("/"))
        except ValueError:
            raise ConfigurationError(
                f"trainer shard {text!r} is neither i/N (e.g. 0/2) nor auto"
            ) from None
        if count < 1 or not 0 <= index < count:
            raise ConfigurationError(f"trainer shard {text!r}: need 0 <= i < N")
        return cls(index, count)

    @property
    def auto(self) -> bool:
        return self.count == 0

    def owns(self, partition: int) -> bool:
        return not self.auto and partition % self.count == self.index

    def __str__(self) -> str:
        return "auto" if self.auto else f"{self.index}/{self.count}"


@dataclass
class ShardRun:
    """A running shard: its partition trainers and the merger (for counters)."""

    spec: ShardSpec
    pool: PartitionPool
    merger: ShardMerger

    @property
    def trainers(self) -> dict[int, Trainer]:
        """Every partition trainer this shard ran, by partition (the latest of each)."""
        return self.pool.trainers

    @property
    def events_learned(self) -> int:
        return self.pool.events_learned


def run_shard(
    settings: Settings,
    spec: ShardSpec,
    model_spec: str | None = None,
    params: Mapping[str, Any] | None = None,
    stop_event: threading.Event | None = None,
    lease_ttl: float = 10.0,
    on_ready: Callable[[ShardRun], None] | None = None,
) -> ShardRun:
    """Learn this shard's partitions until ``stop_event`` is set, merging while it holds
    the model's lease; then publish every partition and a last merge, and return."""
    from online_model.registry import make_model  # imported late: it imports every model

    stop = stop_event or threading.Event()
    template = make_model(model_spec or settings.model_spec, dict(params or {}))
    check_shardable(template)
    check_storable(template, settings.allow_pickle)
    require(settings, kafka=True, redis=True)
    ensure_topics(settings, [settings.topic_page_views, settings.topic_pages])
    cls, full_params = type(template), template._get_params()
    probe = KafkaEventSource(settings)
    try:
        partitions = probe.partitions()[settings.topic_page_views]
    finally:
        probe.close()
    client = settings.redis_client()
    stores = store_for(settings, client)
    part_params = partition_params(cls, full_params, len(partitions))
    codec = page_view_codec(settings)
    catalog = Catalog(settings.catalog_unknown)
    # One catalog sync per partition from the start, so a partition taken over later
    # forgets every page deleted before it came.
    syncs: dict[int, CatalogSync] = {p: CatalogSync() for p in partitions}

    def observe(page_id: str, record: Mapping[str, Any] | None) -> None:
        for sync in syncs.values():
            sync.observe(page_id, record)

    follower = CatalogFollower(
        settings, catalog, on_change=observe, group=settings.trainer_group
    ).start()

    def make(partition: int) -> Trainer:
        namespace = partition_namespace(settings.model_name, partition)
        return Trainer(
            cls(**part_params),
            stores(namespace),
            KafkaEventSource(settings, only_partitions={partition}),
            codec.decode,
            snapshot_interval=settings.snapshot_interval,
            full_every=settings.snapshot_full_every,
            lease=TrainerLease(client, namespace, ttl_s=lease_ttl),
            evaluator=RollingHitRate(catalog=catalog),
            catalog_sync=syncs[partition],
            status=TrainerStatus(client, namespace),
        )

    pool = PartitionPool(make, stop)
    merger = ShardMerger(
        snapshot_store(settings, client),
        {p: stores(partition_namespace(settings.model_name, p)) for p in partitions},
        cls,
        full_params,
        settings.topic_page_views,
        status=TrainerStatus(client, settings.model_name),
        min_gap=settings.snapshot_interval / 2,
        full_every=settings.snapshot_full_every,
        local=pool.published,
    )
    merger.check_model()  # refuse a single trainer's model before learning anything
    run = ShardRun(spec, pool, merger)
    members = None if not spec.auto else ShardMembers(client, settings.model_name, lease_ttl)
    log.info(
        "trainer shard starting model_name=%s shard=%s partitions=%s",
        settings.model_name,
        spec,
        partitions,
    )
    announced = False
    reference = MixtureReference(snapshot_store(settings, client)) if cls is Covisitation else None

    def tick() -> None:
        pool.reconcile(_owned(spec, partitions, members, pool.owned))
        if reference is not None:
            reference.hand_out(pool.models(), behind=pool.behind())

    def announce() -> None:
        # Looked at every loop, not every interval: the partitions learn from the moment
        # they are ready, and whoever waits for the shard should know as soon.
        nonlocal announced
        if not announced and pool.all_ready() and pool.owned:
            announced = True
            if on_ready is not None:
                on_ready(run)

    try:
        _merge_until(
            stop,
            merger,
            TrainerLease(client, settings.model_name, ttl_s=lease_ttl),
            settings.snapshot_interval,
            pool,
            [
                TrainerStatus(client, partition_namespace(settings.model_name, p))
                for p in partitions
            ],
            tick,
            members,
            announce,
        )
    finally:
        stop.set()
        pool.join()
        follower.stop()
    if pool.errors:
        raise pool.errors[0]
    return run


def _owned(
    spec: ShardSpec, partitions: list[int], members: ShardMembers | None, held: set[int]
) -> set[int]:
    """The partitions this shard should learn now (``held`` while Redis cannot say)."""
    if members is None:
        return {p for p in partitions if spec.owns(p)}
    try:
        return assign(partitions, members.beat(), members.token)
    except StoreUnavailable as exc:
        log.warning("trainer shard membership not refreshed error=%r", str(exc))
        return held


def _merge_until(
    stop: threading.Event,
    merger: ShardMerger,
    lease: TrainerLease,
    interval: float,
    pool: PartitionPool,
    statuses: list[TrainerStatus],
    tick: Callable[[], None],
    members: ShardMembers | None,
    announce: Callable[[], None] = lambda: None,
) -> None:
    """Merge every ``interval`` while holding the model's lease (taken when free); at the
    stop, after the partition trainers published their last snapshots, merge once more."""

    def shard_records() -> list[dict[str, Any]]:
        return [r for r in (s.read() for s in statuses) if r is not None]

    # Partitions publish every ``interval``, each at its own moment: look for new ones
    # often, so a merge follows soon after (see ShardMerger for how often it merges).
    look = min(0.1, interval / 5)
    next_tick = 0.0
    held = False
    try:
        while not stop.is_set():
            if time.monotonic() >= next_tick:
                next_tick = time.monotonic() + interval
                tick()
                was_held, held = held, _hold(lease, held)
                if held and not was_held:
                    merger.restart_chain()
                if held:
                    merger.report(shard_records())
            announce()
            if held:
                merger.merge()
            stop.wait(look)
        if members is not None:
            with contextlib.suppress(StoreUnavailable):
                members.leave()  # the others start waiting for our partitions' leases
        pool.join()  # the partitions' last publishes come first
        if _hold(lease, held):
            merger.merge(force=True)
            held = True
    finally:
        if held:
            with contextlib.suppress(StoreUnavailable):
                if merger.status is not None:
                    merger.status.clear()
                lease.release()


def _hold(lease: TrainerLease, held: bool) -> bool:
    """Whether this shard holds the model's lease now (refreshed, or taken when free)."""
    try:
        return lease.refresh() if held else lease.acquire()
    except StoreUnavailable as exc:
        log.warning("merger lease not checked error=%r", str(exc))
        return False
