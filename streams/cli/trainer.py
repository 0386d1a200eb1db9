"""``streamrec trainer``: learn the model from page views and publish signed snapshots."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Mapping
from typing import Any

import click

from online_model.errors import ConfigurationError
from online_model.snapshot import check_storable
from streams.io.event_source import KafkaEventSource
from streams.io.topics import ensure_topics
from streams.settings import Settings
from streams.state.lease import TrainerLease
from streams.trainer.loop import Trainer
from streams.wiring import page_view_codec, snapshot_store

log = logging.getLogger(__name__)

#: Seconds a killed trainer blocks its successor; refreshed every third of it.
DEFAULT_LEASE_TTL = 10.0


def run_trainer(
    settings: Settings,
    model_name: str | None = None,
    params: Mapping[str, Any] | None = None,
    stop_event: threading.Event | None = None,
    lease_ttl: float = DEFAULT_LEASE_TTL,
) -> Trainer:
    """Run a trainer until ``stop_event`` is set; return it (its counters) when done.

    Parameters
    ----------
    settings
        Services, topic, ``model_name`` (the snapshot namespace), snapshot interval/keep
        and the signing key.
    model_name
        Registry name of the model to build when no snapshot exists (default
        ``settings.model_spec``).
    params
        Constructor parameters (strings are coerced to the constructor's types).
    stop_event
        Set it to stop; the trainer then publishes a final snapshot and returns. Without
        one the trainer runs until its thread or process ends.
    lease_ttl
        Seconds of the Redis lease that keeps a second trainer from learning the same model.
    """
    from online_model.registry import make_model  # imported late: it imports every model

    stop = stop_event or threading.Event()
    model = make_model(model_name or settings.model_spec, dict(params or {}))
    check_storable(model, settings.allow_pickle)  # fail now, not at the first publish
    ensure_topics(settings, [settings.topic_page_views])
    client = settings.redis_client()
    store = snapshot_store(settings, client)
    codec = page_view_codec(settings)
    trainer = Trainer(
        model,
        store,
        KafkaEventSource(settings),
        codec.decode,
        snapshot_interval=settings.snapshot_interval,
        full_every=settings.snapshot_full_every,
        lease=TrainerLease(client, settings.model_name, ttl_s=lease_ttl),
    )
    log.info(
        "trainer starting model_name=%s model=%s params=%s topic=%s redis=%s interval=%s",
        settings.model_name,
        model_name or settings.model_spec,
        dict(params or {}),
        settings.topic_page_views,
        settings.redacted_redis_url,
        settings.snapshot_interval,
    )
    trainer.run(stop)
    return trainer


def parse_params(pairs: tuple[str, ...] | list[str]) -> dict[str, str]:
    """``["window=3", "half_life=100"]`` -> ``{"window": "3", "half_life": "100"}``."""
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ConfigurationError(f"--param must look like key=value, got {pair!r}")
        out[name.strip()] = value.strip()
    return out


@click.command("trainer")
@click.option(
    "--model",
    "model",
    default=None,
    envvar="STREAMREC_MODEL",
    show_envvar=True,
    help="Model to build when no snapshot exists (e.g. covisit, popularity, mf, "
    "blend, or package.module:Class). [default: the registry's default]",
)
@click.option(
    "--param",
    "params",
    multiple=True,
    envvar="STREAMREC_MODEL_PARAMS",
    show_envvar=True,
    metavar="KEY=VALUE",
    help="Model constructor parameter; repeat it (the env var is space-separated).",
)
@click.option(
    "--snapshot-interval",
    type=float,
    default=None,
    envvar="STREAMREC_SNAPSHOT_INTERVAL",
    show_envvar=True,
    help="Seconds between snapshots. [default: 0.5]",
)
@click.option(
    "--lease-ttl",
    type=float,
    default=DEFAULT_LEASE_TTL,
    show_default=True,
    envvar="STREAMREC_TRAINER_LEASE_TTL",
    show_envvar=True,
    help="Seconds a killed trainer keeps its successor waiting.",
)
def command(
    model: str | None, params: tuple[str, ...], snapshot_interval: float | None, lease_ttl: float
) -> None:
    """Learn from page views; publish signed snapshots to Redis until SIGTERM/SIGINT.

    Resumes from its newest snapshot (model + offsets): nothing is learned twice. Only one
    trainer per STREAMREC_MODEL_NAME learns; others wait for its lease.
    """
    settings = Settings.from_env(snapshot_interval=snapshot_interval)
    stop = threading.Event()

    def _stop(signum: int, _frame: Any) -> None:
        log.info("trainer stopping signal=%s", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    trainer = run_trainer(settings, model, parse_params(params), stop, lease_ttl)
    click.echo(
        f"trainer stopped: learned {trainer.events_learned} events, skipped "
        f"{trainer.bad_events} bad, published {trainer.snapshots_published} snapshots "
        f"(last version {trainer.last_version})",
        err=True,
    )
