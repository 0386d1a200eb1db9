"""``streamrec retrain``: rebuild a model from the whole log on Apache Spark; maybe publish it."""

from __future__ import annotations

import json
import logging
from typing import Any

import click

from online_model.errors import ConfigurationError
from streams.cli._repeat import repeat, utc_text
from streams.cli.options import (
    Duration,
    model_option,
    param_option,
    parse_params,
    publish_options,
    range_options,
    reading_options,
    setting_option,
)
from streams.replay.publish import EXIT_GATE_REFUSED, publish
from streams.replay.rebuild import check_gate_metric
from streams.settings import Settings
from streams.time_range import TimeRange, parse_range
from streams.wiring import snapshot_signing_key, snapshot_store

log = logging.getLogger(__name__)


@click.command("retrain")
@range_options("retrain", "when the job starts")
@setting_option(
    "--input",
    "input_path",
    default=None,
    type=click.Path(dir_okay=False),
    setting="retrain_input",
    help="Read this CSV/JSONL file of page views (as `streamrec produce` takes) "
    "instead of the topic; a malformed row stops the job, naming its line.",
)
@setting_option(
    "--skip-bad",
    is_flag=True,
    setting="skip_bad",
    help="With --input: skip and count malformed rows instead of stopping at the first.",
)
@model_option(
    " covisit: the whole model, rebuilt in bulk; hybrid: its item-item batch layer, "
    "published for the hybrid's trainer to swap in (--publish live or none)."
)
@param_option()
@publish_options(
    "retrain",
    "e.g. hit@10: publish only if the candidate beats the current model's class and "
    "params rebuilt from the same events, scored on the tail; else exit "
    f"{EXIT_GATE_REFUSED} (one-shot) or skip this round (--every).",
)
@setting_option(
    "--tail",
    type=click.IntRange(min=0),
    default=5_000,
    show_default=True,
    setting="retrain_tail",
    help="Newest events learned online on the driver, test-then-train: they learn the "
    "popularity weight and give the metrics (and the gate's score).",
)
@setting_option(
    "--master",
    default=None,
    setting="spark_master",
    help="Spark master URL (e.g. spark://host:7077). [default: spark-submit's, else local[*]]",
)
@setting_option(
    "--every",
    type=Duration(),
    default=None,
    metavar="DURATION",
    setting="retrain_every",
    help="Start the job every DURATION (6h, 30m, 1d, 1h30m; a bare number is refused), "
    "one JSON line per run, until Ctrl-C (exit 130) or SIGTERM (143, after the run in "
    "progress). [default: run once]",
)
@setting_option(
    "--records-per-task",
    type=click.IntRange(min=1),
    default=250_000,
    show_default=True,
    setting="retrain_records_per_task",
    help="Offsets of a partition read by one Spark task.",
)
@reading_options("retrain")
def command(
    start: str | None,
    end: str | None,
    input_path: str | None,
    skip_bad: bool,
    model_spec: str | None,
    params: tuple[str, ...],
    publish_mode: str,
    gate: str | None,
    tail: int,
    master: str | None,
    every: float | None,
    records_per_task: int,
    idle_timeout: float,
    lateness: float,
    topic: str | None,
) -> None:
    """Rebuild a FRESH model from the page-view log on Apache Spark (see README).

    Executors read offset ranges of the topic (or the --input file) and compute the
    co-visitation statistics; the driver builds the model, learns the newest --tail events
    online and prints a JSON summary (events, bad records by reason, offsets covered,
    seconds, metrics, snapshot version and content hash) on stdout.

    --model hybrid builds the hybrid's item-item batch layer instead (Gram matrix on the
    executors, EASE on the driver) and publishes it, with the offsets it covers, for
    the hybrid's trainer to swap in.
    """
    from streams.retrain.job import spark_context  # imported late: pyspark is an optional extra
    from streams.retrain.run import RetrainSpec, builds_batch_layer

    settings = Settings.from_env()
    base_range = parse_range(start, end)
    spec_params = parse_params(params)
    name = model_spec or settings.model_spec
    batch_layer = builds_batch_layer(name, spec_params)  # a bad spec fails before Spark
    if batch_layer:
        _check_batch_layer_options(gate, publish_mode, input_path)
    key = snapshot_signing_key(settings)
    spec = RetrainSpec(
        model=name,
        params=spec_params,
        time_range=base_range,
        topic=topic,
        input_path=input_path,
        skip_bad=skip_bad,
        tail=tail,
        gate=gate,
        idle_timeout=idle_timeout,
        lateness=lateness,
        records_per_task=records_per_task,
    )
    if gate:
        check_gate_metric(gate, settings.k)
        if tail <= 0:
            raise ConfigurationError("--gate scores the tail: it needs --tail > 0")
    try:
        sc = spark_context(master)
    except ImportError as exc:
        raise ConfigurationError(
            "retrain needs pyspark: pip install 'streamrec[spark]' (and Java 17)"
        ) from exc

    def run_once() -> bool:
        if batch_layer:
            _run_batch_layer(sc, settings, spec, key, publish_mode)
            return False
        return _run(sc, settings, spec, key, publish_mode)

    ctx = click.get_current_context()
    try:
        if every is None:
            if run_once():
                ctx.exit(EXIT_GATE_REFUSED)
            return
        ctx.exit(repeat(run_once, every))
    finally:
        sc.stop()


def _check_batch_layer_options(gate: str | None, publish_mode: str, input_path: str | None) -> None:
    """Options that make no sense for a hybrid's batch layer, refused before Spark starts."""
    if gate:
        raise ConfigurationError(
            "--gate judges whole models; a hybrid's batch layer is mixed in by its trainer, "
            "which learns the mix weight online (leave --gate out)"
        )
    if publish_mode == "candidate":
        raise ConfigurationError(
            "--publish candidate: a batch layer is either published for the hybrid's "
            "trainer (live) or only printed (none)"
        )
    if publish_mode == "live" and input_path is not None:
        raise ConfigurationError(
            "--publish live with --input: a batch layer read from a file covers no offsets "
            "of the topic, so the trainer could not tell which events it holds"
        )


def _up_to_now(spec: Any) -> Any:
    """``spec`` with "everything up to now" made this run's start, decided on the driver."""
    time_range = spec.time_range
    if time_range.end_ms is None and spec.input_path is None:
        import dataclasses
        import time

        now_ms = int(time.time() * 1000)
        if time_range.start_ms is not None and time_range.start_ms >= now_ms:
            raise ConfigurationError(
                f"--from {utc_text(time_range.start_ms / 1000)} is not before now "
                f"({utc_text(now_ms / 1000)}): up to now nothing is in the range"
            )
        time_range = TimeRange(time_range.start_ms, now_ms)
        spec = dataclasses.replace(spec, time_range=time_range)
    return spec


def _run_batch_layer(sc: Any, settings: Settings, spec: Any, key: bytes, publish_mode: str) -> None:
    from online_model.persist.batch_layer_file import dump_batch_layer, load_batch_layer
    from online_model.persist.snapshot import SnapshotMeta
    from streams.retrain.run import retrain_batch_layer
    from streams.wiring import batch_layer_store

    outcome = retrain_batch_layer(sc, settings, _up_to_now(spec))
    summary = outcome.summary
    click.echo(
        f"retrain batch layer events={summary['events']} bad={summary['bad_records']} "
        f"pages={summary['batch_layer']['pages']} seconds={summary['seconds']['total']}",
        err=True,
    )
    out: dict[str, Any] = {"publish": publish_mode, "version": None}
    extra = {"retrain": {k: v for k, v in summary.items() if k != "source"}}
    if publish_mode == "live":
        store = batch_layer_store(settings)
        version = store.publish(outcome.layer, outcome.offsets, extra=extra)
        out["version"] = version
        out["content_hash"] = store.load(version).meta.content_hash
        click.echo(
            f"published batch layer model={settings.model_name} version={version}: the "
            "hybrid's trainer swaps it in once it has read up to its offsets",
            err=True,
        )
    else:
        meta = SnapshotMeta(settings.model_name, offsets=outcome.offsets, origin="retrain")
        data = dump_batch_layer(meta, outcome.layer, key)
        out["content_hash"] = load_batch_layer(data, key).meta.content_hash
    click.echo(json.dumps({**summary, **out}, sort_keys=True, default=repr))


def _run(sc: Any, settings: Settings, spec: Any, key: bytes, publish_mode: str) -> bool:
    from streams.retrain.run import retrain_once

    spec = _up_to_now(spec)
    current = snapshot_store(settings).load_current() if spec.gate else None
    outcome = retrain_once(sc, settings, spec, current)
    summary = outcome.summary
    click.echo(
        f"retrain events={summary['events']} bad={summary['bad_records']} "
        f"seconds={summary['seconds']['total']}",
        err=True,
    )
    published, refused = publish(settings, outcome.snapshot, key, publish_mode, outcome.verdict)
    click.echo(json.dumps({**summary, **published}, sort_keys=True, default=repr))
    return refused
