"""``streamrec trainer``: learn the model from page views and publish signed snapshots."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

import click

from streams.cli.options import Duration, model_option, param_option, parse_params, setting_option
from streams.settings import Settings
from streams.trainer.run import DEFAULT_LEASE_TTL, challenger_training, ready_line, run_trainer
from streams.trainer.shards import ShardRun, ShardSpec, run_shard

log = logging.getLogger(__name__)


@click.command("trainer")
@model_option(" Built when no snapshot exists.")
@param_option()
@setting_option(
    "--snapshot-interval",
    type=Duration(),
    default=None,
    setting="snapshot_interval",
    help="Time between snapshots (e.g. 500ms, 2s). [default: 500ms]",
)
@setting_option(
    "--lease-ttl",
    type=Duration(),
    default=f"{DEFAULT_LEASE_TTL:g}s",
    show_default=True,
    setting="trainer_lease_ttl",
    help="How long a killed trainer keeps its successor waiting (e.g. 10s).",
)
@setting_option(
    "--challenger",
    is_flag=True,
    setting="trainer_challenger",
    default=False,
    help="Train the challenger of the experiment running on STREAMREC_MODEL_NAME (its "
    "namespace, model and parameters come from the experiment record).",
)
@setting_option(
    "--shard",
    default=None,
    setting="trainer_shard",
    help="Run as a trainer shard: i/N (e.g. 0/2) learns the partitions p with p % N == i; "
    "auto shares the partitions with the other live auto shards, rebalanced as they come "
    "and go. The shards' merge is the model (covisit and popularity only).",
)
def command(
    model_spec: str | None,
    params: tuple[str, ...],
    snapshot_interval: float | None,
    lease_ttl: float,
    challenger: bool,
    shard: str | None,
) -> None:
    """Learn from page views; publish signed snapshots to Redis until SIGTERM/SIGINT.

    Resumes from its newest snapshot (model + offsets): nothing is learned twice. Only one
    trainer per STREAMREC_MODEL_NAME learns; others wait for its lease.
    """
    settings = Settings.from_env(snapshot_interval=snapshot_interval)
    model_params = parse_params(params)
    if challenger:
        settings, model_spec, model_params = challenger_training(settings)
    stop = threading.Event()

    def _stop(signum: int, _frame: Any) -> None:
        log.info("trainer stopping signal=%s", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    if shard:
        _run_shard(settings, ShardSpec.parse(shard), model_spec, model_params, stop, lease_ttl)
        return
    trainer = run_trainer(
        settings,
        model_spec,
        model_params,
        stop,
        lease_ttl,
        on_ready=lambda t: click.echo(ready_line(settings, t), err=True),
    )
    click.echo(
        f"trainer stopped: learned {trainer.events_learned} events, skipped "
        f"{trainer.bad_events} bad, published {trainer.snapshots_published} snapshots "
        f"(last version {trainer.last_version})",
        err=True,
    )


def _run_shard(
    settings: Settings,
    spec: ShardSpec,
    model_spec: str | None,
    params: dict[str, str],
    stop: threading.Event,
    lease_ttl: float,
) -> None:
    def ready(run: ShardRun) -> None:
        click.echo(
            f"trainer shard ready: model {settings.model_name}, shard {spec}, partitions "
            f"{sorted(run.trainers)} of {settings.topic_page_views}",
            err=True,
        )

    run = run_shard(settings, spec, model_spec, params, stop, lease_ttl, on_ready=ready)
    click.echo(
        f"trainer shard stopped: learned {run.events_learned} events in partitions "
        f"{sorted(run.trainers)}, {run.merger.merges_published} merged snapshots published",
        err=True,
    )
