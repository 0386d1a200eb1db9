"""``streamrec replay``: a fresh model trained on a time range of page-views; maybe published."""

from __future__ import annotations

import json

import click

from streams.cli.options import (
    k_option,
    model_option,
    param_option,
    parse_params,
    publish_options,
    range_options,
    reading_options,
)
from streams.replay.publish import EXIT_GATE_REFUSED
from streams.replay.run import EmptyRange, ReplayRequest, run_replay
from streams.settings import Settings
from streams.time_range import parse_range


@click.command("replay")
@range_options("replay", "until the topic goes idle")
@model_option(" Trained fresh.")
@param_option()
@publish_options(
    "replay",
    "e.g. hit@10: publish only if the candidate beats a fresh instance of the current "
    f"model's class and params on the same events; else exit {EXIT_GATE_REFUSED}.",
)
@reading_options("replay", " Raise it when producers send late (out-of-order) events.")
@k_option("List length of the prequential metrics.")
def command(
    start: str | None,
    end: str | None,
    model_spec: str | None,
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
        parse_range(start, end),
        model_spec,
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
