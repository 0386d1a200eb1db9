"""``streamrec replay``: a fresh model trained on a time range of page-views; maybe published."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

import click

from streams.cli._progress import Progress
from streams.cli.options import Count, parse_params
from streams.io.range_reader import KafkaRangeReader
from streams.ops.probes import require
from streams.replay.publish import EXIT_GATE_REFUSED, publish
from streams.replay.rebuild import (
    ReplayLog,
    TimeRange,
    Verdict,
    build_snapshot,
    check_gate_metric,
    collect,
    judge,
    parse_time,
    train,
)
from streams.settings import Settings
from streams.wiring import page_view_codec, snapshot_signing_key, snapshot_store

log = logging.getLogger(__name__)

#: Exit status when no page view of the topic lies in the range: nothing to train on.
EXIT_EMPTY_RANGE = 4


def _json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, default=repr, sort_keys=True))


@click.command("replay")
@click.option(
    "--from",
    "start",
    default=None,
    envvar="STREAMREC_REPLAY_FROM",
    show_envvar=True,
    help="Start of the range (inclusive): ISO-8601 (UTC if no zone) or epoch ms. "
    "[default: the beginning of the topic]",
)
@click.option(
    "--to",
    "end",
    default=None,
    envvar="STREAMREC_REPLAY_TO",
    show_envvar=True,
    help="End of the range (exclusive), same formats. [default: until the topic goes idle]",
)
@click.option(
    "--model",
    "model_name",
    default=None,
    envvar="STREAMREC_MODEL",
    show_envvar=True,
    help="Model to train fresh: covisit, popularity, mf, blend, or "
    "package.module:Class. [default: the registry's default]",
)
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    envvar="STREAMREC_MODEL_PARAMS",
    show_envvar=True,
    help="Model constructor parameter; repeat it (the env var is space-separated).",
)
@click.option(
    "--publish",
    "publish_mode",
    type=click.Choice(["none", "candidate", "live"]),
    default="none",
    show_default=True,
    envvar="STREAMREC_REPLAY_PUBLISH",
    show_envvar=True,
    help="none: only print; candidate: store it, current unchanged; live: store "
    "and promote it (pinned).",
)
@click.option(
    "--gate",
    default=None,
    metavar="METRIC",
    envvar="STREAMREC_REPLAY_GATE",
    show_envvar=True,
    help="e.g. hit@10: publish only if the candidate beats a fresh instance of the "
    f"current model's class and params on the same events; else exit "
    f"{EXIT_GATE_REFUSED}.",
)
@click.option(
    "--idle-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=5.0,
    show_default=True,
    envvar="STREAMREC_REPLAY_IDLE_TIMEOUT",
    show_envvar=True,
    help="Seconds without a record after which a partition counts as read.",
)
@click.option(
    "--lateness",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    envvar="STREAMREC_REPLAY_LATENESS",
    show_envvar=True,
    help="Seconds past --to a record must be stamped before its partition counts as "
    "read; raise it when producers send late (out-of-order) events.",
)
@click.option(
    "--topic",
    default=None,
    envvar="STREAMREC_TOPIC_PAGE_VIEWS",
    show_envvar=True,
    help="Topic to replay. [default: page-views]",
)
@click.option(
    "--k",
    type=Count(1),
    default=None,
    envvar="STREAMREC_K",
    show_envvar=True,
    help="List length of the prequential metrics. [default: 10]",
)
def command(
    start: str | None,
    end: str | None,
    model_name: str | None,
    params: tuple[str, ...],
    publish_mode: str,
    gate: str | None,
    idle_timeout: float,
    lateness: float,
    topic: str | None,
    k: int | None,
) -> None:
    """Train a FRESH model on page views whose record time is in [--from, --to).

    Events are learned in event-time order (ties: partition, offset) test-then-train; the
    metrics JSON, the snapshot's content hash and where it went are printed on stdout.
    Two replays of one range with one model spec give the same content hash.
    """
    from online_model.registry import make_model  # imported late: it imports every model

    settings = Settings.from_env(k=k)
    k = settings.k
    time_range = TimeRange(parse_time(start), parse_time(end))
    if gate:
        check_gate_metric(gate, k)
    spec_params = parse_params(params)
    name = model_name or settings.model_spec
    model = make_model(name, spec_params)  # a bad spec fails before any reading
    key = snapshot_signing_key(settings)
    target = topic or settings.topic_page_views
    require(settings, kafka=True, redis=publish != "none" or bool(gate))
    codec = page_view_codec(settings)
    reader = KafkaRangeReader(settings, target, idle_timeout, lateness)
    partitions = reader.partitions()
    with Progress(f"reading {target}", unit="records") as bar:
        replay_log = collect(
            bar.iterate(reader.read(time_range)), codec.decode, time_range, target, partitions
        )
    click.echo(
        f"replay events={len(replay_log.events)} bad={replay_log.n_bad} "
        f"scanned={reader.scanned} partitions={replay_log.partitions}",
        err=True,
    )
    if not replay_log.events:
        # A model trained on nothing, judged against another trained on nothing, would
        # be "0.0000 does not beat 0.0000": say what happened instead.
        click.echo(f"error: {_empty_range(time_range, target, reader, replay_log)}", err=True)
        click.get_current_context().exit(EXIT_EMPTY_RANGE)

    with Progress(f"training {name}", len(replay_log.events), "page views") as bar:
        report = train(
            model,
            replay_log.events,
            k,
            settings.history_length,
            name,
            spec_params,
            on_event=lambda: bar.update(1),
        )

    verdict = _judge(settings, gate, report, replay_log, k) if gate else None
    spec = {
        "name": name,
        "class": f"{type(model).__module__}.{type(model).__qualname__}",
        "params": _json_safe(model._get_params()),
    }
    snap = build_snapshot(model, replay_log, report, settings.model_name, spec)
    out: dict[str, Any] = {
        "metrics": report,
        "replay": replay_log.summary(),
        "model": spec,
    }
    published, refused = publish(settings, snap, key, publish_mode, verdict)
    out.update(published)
    click.echo(json.dumps(out, sort_keys=True))
    if refused:
        click.get_current_context().exit(EXIT_GATE_REFUSED)


def _iso(ms: int) -> str:
    return (
        datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    )


def _empty_range(
    time_range: TimeRange, topic: str, reader: KafkaRangeReader, replay_log: ReplayLog
) -> str:
    start = _iso(time_range.start_ms) if time_range.start_ms is not None else "the beginning"
    end = _iso(time_range.end_ms) if time_range.end_ms is not None else "the end"
    if reader.first_ts_ms is None or reader.last_ts_ms is None:
        found = "the topic has no records"
    else:
        found = (
            f"its {reader.scanned} records read are stamped {_iso(reader.first_ts_ms)} .. "
            f"{_iso(reader.last_ts_ms)}"
        )
    if replay_log.n_bad:
        found += f"; {replay_log.n_bad} records of the range did not decode"
    return (
        f"no page view on topic {topic} has a record timestamp in [{start}, {end}) "
        f"({found}); nothing was trained, judged or published"
    )


def _judge(
    settings: Settings, gate: str, report: dict[str, Any], replay_log: ReplayLog, k: int
) -> Verdict:
    store = snapshot_store(settings)
    current = store.load_current()  # refused (exit 2) if it does not verify
    with Progress(
        "evaluating the current model's spec",
        len(replay_log.events) if current else 0,
        "page views",
    ) as bar:
        return judge(
            gate,
            report,
            current.model if current else None,
            current.meta.version if current else None,
            replay_log.events,
            k,
            settings.history_length,
            on_event=lambda: bar.update(1),
        )
