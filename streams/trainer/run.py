"""Run one online trainer process: build its parts from the settings and learn until stopped.

The loop itself (learn, snapshot, resume from offsets, the lease) is
:class:`streams.trainer.loop.Trainer`; this module wires it to Kafka and Redis.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from online_model.catalog import Catalog
from online_model.errors import ConfigurationError
from online_model.models.hybrid import Hybrid
from online_model.persist.snapshot import check_storable
from streams.catalog.follower import CatalogFollower
from streams.io.codec import page_view_codec
from streams.io.event_source import KafkaEventSource
from streams.io.topics import ensure_topics
from streams.services.embedded_broker_watch import EmbeddedBrokerWatch
from streams.services.probes import require
from streams.settings import Settings
from streams.state.lease import TrainerLease
from streams.state.trainer_status import TrainerStatus
from streams.trainer.batch_layer_watch import BatchLayerWatcher
from streams.trainer.catalog_sync import CatalogSync
from streams.trainer.loop import Trainer
from streams.trainer.quality_estimate import RollingHitRate
from streams.wiring import batch_layer_store, snapshot_store

log = logging.getLogger(__name__)

#: Seconds a killed trainer blocks its successor; refreshed every third of it.
DEFAULT_LEASE_TTL = 10.0
#: Seconds the trainer waits for the catalog to be read to its end before learning (as a
#: scorer does before serving); past it, learning starts and the catalog catches up.
CATALOG_LOAD_TIMEOUT = 30.0

#: Least seconds between two looks for a new batch layer (one Redis GET each).
BATCH_LAYER_CHECK_S = 1.0


def run_trainer(
    settings: Settings,
    model_spec: str | None = None,
    params: Mapping[str, Any] | None = None,
    stop_event: threading.Event | None = None,
    lease_ttl: float = DEFAULT_LEASE_TTL,
    on_ready: Callable[[Trainer], None] | None = None,
) -> Trainer:
    """Run a trainer until ``stop_event`` is set; return it (its counters) when done.

    Parameters
    ----------
    settings
        Services, topic, ``model_name`` (the snapshot namespace), snapshot interval/keep
        and the signing key.
    model_spec
        Registry name or ``package.module:Class`` of the model to build when no snapshot
        exists (default ``settings.model_spec``).
    params
        Constructor parameters (strings are coerced to the constructor's types).
    stop_event
        Set it to stop; the trainer then publishes a final snapshot and returns. Without
        one the trainer runs until its thread or process ends.
    lease_ttl
        Seconds of the Redis lease that keeps a second trainer from learning the same model.
    on_ready
        Called once the trainer holds the lease, has resumed and is about to learn.
    """
    from online_model.registry import make_model  # imported late: it imports every model

    stop = stop_event or threading.Event()
    model = make_model(model_spec or settings.model_spec, dict(params or {}))
    check_storable(model, settings.allow_pickle)  # fail now, not at the first publish
    require(settings, kafka=True, redis=True)
    ensure_topics(settings, [settings.topic_page_views, settings.topic_pages])
    client = settings.redis_client()
    store = snapshot_store(settings, client)
    codec = page_view_codec(settings)
    # The catalog: read from the start, then live (see streams.trainer.catalog_sync).
    catalog = Catalog(settings.catalog_unknown)
    sync = CatalogSync()
    follower = CatalogFollower(
        settings, catalog, on_change=sync.observe, group=settings.trainer_group
    ).start()
    if not follower.wait_loaded(CATALOG_LOAD_TIMEOUT):
        log.warning(
            "catalog_not_loaded topic=%s waited_s=%.0f: learning while it catches up",
            settings.topic_pages,
            CATALOG_LOAD_TIMEOUT,
        )
    # A hybrid swaps in the batch layers `streamrec retrain --model hybrid` publishes.
    batch_layers = (
        BatchLayerWatcher(
            batch_layer_store(settings, client),
            check_every=max(settings.snapshot_interval, BATCH_LAYER_CHECK_S),
        )
        if isinstance(model, Hybrid)
        else None
    )
    trainer = Trainer(
        model,
        store,
        KafkaEventSource(settings),
        codec.decode,
        snapshot_interval=settings.snapshot_interval,
        full_every=settings.snapshot_full_every,
        lease=TrainerLease(client, settings.model_name, ttl_s=lease_ttl),
        evaluator=RollingHitRate(catalog=catalog),
        catalog_sync=sync,
        batch_layers=batch_layers,
        status=TrainerStatus(client, settings.model_name),
    )
    log.info(
        "trainer starting model_name=%s model=%s params=%s topic=%s redis=%s interval=%s",
        settings.model_name,
        model_spec or settings.model_spec,
        dict(params or {}),
        settings.topic_page_views,
        settings.redacted_redis_url,
        settings.snapshot_interval,
    )
    broker_watch = EmbeddedBrokerWatch(settings).start()
    try:
        trainer.run(stop, on_ready)
    finally:
        broker_watch.stop()
        follower.stop()
    return trainer


def challenger_training(settings: Settings) -> tuple[Settings, str | None, dict[str, str]]:
    """Settings, model and parameters of the challenger of the experiment running on
    ``settings.model_name`` (after a promotion: of the promoted challenger, which is
    served and must keep learning): its own namespace (snapshots, lease) and its own
    commit group, so it learns under the same exactly-once rules as any trainer."""
    from streams.experiment.store import LOG_LENGTH, ExperimentStore

    experiments = ExperimentStore(settings.redis_client(), settings.model_name)
    serving, running = experiments.read()
    if running is None:
        running = next(
            (
                done
                for done in experiments.history(LOG_LENGTH)
                if done.state == "promoted" and done.challenger == serving
            ),
            None,
        )
    if running is None:
        raise ConfigurationError(
            f"no experiment is running on {settings.model_name}, and it serves {serving}, "
            "no promoted challenger: nothing to train with --challenger"
        )
    trained = dataclasses.replace(
        settings,
        model_name=running.challenger,
        trainer_group=settings.trainer_group_of(running.challenger),
    )
    return trained, running.model or None, dict(running.params)


def ready_line(settings: Settings, trainer: Trainer) -> str:
    """The one line a trainer prints when it starts learning."""
    since = (
        f"resumed from version {trainer.resumed_from}"
        if trainer.resumed_from is not None
        else "no snapshot yet: learning from the start of the topic"
    )
    return (
        f"trainer ready: model {settings.model_name} ({type(trainer.model).__name__}), "
        f"{since}; reading {settings.topic_page_views} at {settings.bootstrap_servers}; "
        f"a snapshot to {settings.redacted_redis_url} every {settings.snapshot_interval:g} s"
    )
