"""``streamrec replay``: a fresh model trained on a time range of page-views; maybe published."""

from __future__ import annotations

import json

import click

from streams.cli.options import Count, parse_params
from streams.replay.publish import EXIT_GATE_REFUSED
from streams.replay.rebuild import TimeRange, parse_time
from streams.replay.run import EmptyRange, ReplayRequest, run_replay
from streams.settings import Settings


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
    settings = Settings.from_env(k=k)
    request = ReplayRequest(
        TimeRange(parse_time(start), parse_time(end)),
        model_name,
        parse_params(params),
        publish_mode,
        gate,
        idle_timeout,
        lateness,
        topic,
    )
    try:
        out, status = run_replay(settings, request)
    except EmptyRange as exc:
        # A model trained on nothing, judged against another trained on nothing, would be
        # "0.0000 does not beat 0.0000": say what happened instead.
        click.echo(f"error: {exc}", err=True)
        click.get_current_context().exit(exc.exit_code)
    click.echo(json.dumps(out, sort_keys=True))
    if status:
        click.get_current_context().exit(status)
