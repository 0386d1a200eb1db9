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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from online_model.catalog import Catalog
from online_model.errors import ConfigurationError
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
from streams.state.trainer_status import TrainerStatus
from streams.trainer.catalog_sync import CatalogSync
from streams.trainer.loop import Trainer
from streams.trainer.merger import ShardMerger, partition_namespace
from streams.trainer.quality_estimate import RollingHitRate
from streams.wiring import snapshot_store, store_for

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShardSpec:
    """Shard ``index`` of ``count``: it learns the partitions ``p % count == index``."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> ShardSpec:
        """``"i/N"`` with ``0 <= i < N``.

        >>> ShardSpec.parse("1/2").owns(3), ShardSpec.parse("1/2").owns(4)
        (True, False)
        """
        try:
            index, count = (int(part) for part in text.split("/"))
        except ValueError:
            raise ConfigurationError(f"trainer shard {text!r} is not i/N (e.g. 0/2)") from None
        if count < 1 or not 0 <= index < count:
            raise ConfigurationError(f"trainer shard {text!r}: need 0 <= i < N")
        return cls(index, count)

    def owns(self, partition: int) -> bool:
        return partition % self.count == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass
class ShardRun:
    """A running shard: its partition trainers and the merger (for counters)."""

    spec: ShardSpec
    trainers: dict[int, Trainer]
    merger: ShardMerger

    @property
    def events_learned(self) -> int:
        return sum(t.events_learned for t in self.trainers.values())


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
    syncs: dict[int, CatalogSync] = {p: CatalogSync() for p in partitions if spec.owns(p)}

    def observe(page_id: str, record: Mapping[str, Any] | None) -> None:
        for sync in syncs.values():
            sync.observe(page_id, record)

    follower = CatalogFollower(
        settings, catalog, on_change=observe, group=settings.trainer_group
    ).start()
    trainers: dict[int, Trainer] = {}
    for partition, sync in syncs.items():
        namespace = partition_namespace(settings.model_name, partition)
        trainers[partition] = Trainer(
            cls(**part_params),
            stores(namespace),
            KafkaEventSource(settings, only_partitions={partition}),
            codec.decode,
            snapshot_interval=settings.snapshot_interval,
            full_every=settings.snapshot_full_every,
            lease=TrainerLease(client, namespace, ttl_s=lease_ttl),
            evaluator=RollingHitRate(catalog=catalog),
            catalog_sync=sync,
            status=TrainerStatus(client, namespace),
        )
    merger = ShardMerger(
        snapshot_store(settings, client),
        {p: stores(partition_namespace(settings.model_name, p)) for p in partitions},
        cls,
        full_params,
        settings.topic_page_views,
        status=TrainerStatus(client, settings.model_name),
    )
    merger.check_model()  # refuse a single trainer's model before learning anything
    run = ShardRun(spec, trainers, merger)
    log.info(
        "trainer shard starting model_name=%s shard=%s partitions=%s of %s",
        settings.model_name,
        spec,
        sorted(trainers),
        partitions,
    )
    ready: set[int] = set()
    errors: list[BaseException] = []

    def learn(partition: int, trainer: Trainer) -> None:
        try:
            trainer.run(stop, on_ready=lambda _t: ready.add(partition))
        except BaseException as exc:
            errors.append(exc)
            log.exception("partition trainer failed model_name=%s", trainer.store.model_name)
            stop.set()

    threads = [
        threading.Thread(target=learn, args=(p, t), name=f"trainer-p{p}", daemon=True)
        for p, t in trainers.items()
    ]
    for thread in threads:
        thread.start()
    announced = False

    def tick() -> None:
        nonlocal announced
        if not announced and len(ready) == len(trainers):
            announced = True
            if on_ready is not None:
                on_ready(run)

    try:
        _merge_until(
            stop,
            merger,
            TrainerLease(client, settings.model_name, ttl_s=lease_ttl),
            settings.snapshot_interval,
            threads,
            [
                TrainerStatus(client, partition_namespace(settings.model_name, p))
                for p in partitions
            ],
            tick,
        )
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        follower.stop()
    if errors:
        raise errors[0]
    return run


def _merge_until(
    stop: threading.Event,
    merger: ShardMerger,
    lease: TrainerLease,
    interval: float,
    threads: list[threading.Thread],
    statuses: list[TrainerStatus],
    tick: Callable[[], None],
) -> None:
    """Merge every ``interval`` while holding the model's lease (taken when free); at the
    stop, after the partition trainers published their last snapshots, merge once more."""

    def shard_records() -> list[dict[str, Any]]:
        return [r for r in (s.read() for s in statuses) if r is not None]

    held = False
    try:
        while not stop.is_set():
            tick()
            held = _hold(lease, held)
            if held:
                merger.merge()
                merger.report(shard_records)
            stop.wait(interval)
        for thread in threads:  # their final publishes come first
            thread.join()
        if _hold(lease, held):
            merger.merge()
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
