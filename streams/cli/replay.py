"""``streamrec replay``: a fresh model trained on a time range of page-views; maybe published."""

from __future__ import annotations

import json
import logging
from typing import Any

import click

from online_model.replay import (
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
from online_model.snapshot import signing_key

from ..codec import PAGE_VIEW, AvroCodec
from ..replay_source import KafkaRangeReader
from ..scorer_runtime import snapshot_store
from ..settings import Settings
from ._publish import EXIT_GATE_REFUSED, publish
from .trainer import parse_params

log = logging.getLogger(__name__)


def _json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, default=repr, sort_keys=True))


def _stderr() -> Any:
    return click.get_text_stream("stderr")


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
    type=click.IntRange(min=1),
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
    name = model_name or settings.model
    model = make_model(name, spec_params)  # a bad spec fails before any reading
    key = signing_key(settings.snapshot_key.get(), settings.insecure_dev)
    target = topic or settings.topic_page_views
    codec = AvroCodec.bundled(
        PAGE_VIEW, settings.schema_registry_url, max_bytes=settings.max_event_bytes
    )
    reader = KafkaRangeReader(settings, target, idle_timeout, lateness)
    partitions = reader.partitions()
    with click.progressbar(
        reader.read(time_range), label=f"reading {target}", file=_stderr()
    ) as records:
        replay_log = collect(records, codec.decode, time_range, target, partitions)
    click.echo(
        f"replay events={len(replay_log.events)} bad={replay_log.n_bad} "
        f"scanned={reader.scanned} partitions={replay_log.partitions}",
        err=True,
    )

    with click.progressbar(
        length=len(replay_log.events), label=f"training {name}", file=_stderr()
    ) as bar:
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


def _judge(
    settings: Settings, gate: str, report: dict[str, Any], replay_log: ReplayLog, k: int
) -> Verdict:
    store = snapshot_store(settings)
    current = store.load_current()  # refused (exit 2) if it does not verify
    with click.progressbar(
        length=len(replay_log.events) if current else 0,
        label="evaluating the current model's spec",
        file=_stderr(),
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
