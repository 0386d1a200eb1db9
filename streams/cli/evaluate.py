"""``streamrec evaluate``: prequential metrics of a model on a page-view file, as JSON."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from online_model.errors import StreamrecError
from online_model.evaluate import evaluate
from online_model.events_file import read_events
from online_model.registry import DEFAULT_MODEL, make_model
from streams.cli._progress import Progress


def _parse_params(pairs: tuple[str, ...]) -> dict[str, str]:
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{pair!r} is not key=value", param_hint="--param")
        params[key.strip()] = value
    return params


@click.command("evaluate")
@click.option(
    "--input",
    "input_path",
    required=True,
    type=click.Path(dir_okay=False),
    envvar="STREAMREC_INPUT",
    show_envvar=True,
    help="CSV (user_id,page_id,ts_ms[,session_id]) or JSONL page views.",
)
@click.option(
    "--model",
    "model_name",
    default=DEFAULT_MODEL,
    show_default=True,
    envvar="STREAMREC_MODEL",
    show_envvar=True,
    help="Built-in name (popularity, covisit, mf, blend) or package.module:Class.",
)
@click.option(
    "--k",
    default=10,
    show_default=True,
    type=click.IntRange(min=1),
    envvar="STREAMREC_K",
    show_envvar=True,
    help="Length of each recommendation list.",
)
@click.option(
    "--param",
    "param_pairs",
    multiple=True,
    metavar="KEY=VALUE",
    envvar="STREAMREC_PARAM",
    show_envvar=True,
    help="Model constructor parameter; repeatable (env: space separated).",
)
@click.option(
    "--skip-bad",
    is_flag=True,
    default=False,
    envvar="STREAMREC_SKIP_BAD",
    show_envvar=True,
    help="Skip and count malformed rows instead of failing.",
)
def command(
    input_path: str, model_name: str, k: int, param_pairs: tuple[str, ...], skip_bad: bool
) -> None:
    """Replay a page-view file test-then-train and print one JSON report on stdout."""
    params = _parse_params(param_pairs)
    try:
        model = make_model(model_name, params)
        click.echo(f"reading {input_path}", err=True)
        log = read_events(input_path, skip_bad=skip_bad)
        click.echo(f"events={len(log)} bad={log.n_bad} model={model_name}", err=True)
        with Progress(f"evaluating {model_name}", len(log.events), "page views") as bar:

            def progress(report: dict[str, Any]) -> None:
                bar.update(int(report["n_events"]) - bar.done)

            report = evaluate(
                model,
                log.events,
                k,
                model_name=model_name,
                params=params,
                progress=progress,
                progress_every=1000,
            )
    except StreamrecError as exc:
        raise click.ClickException(str(exc)) from exc
    report["n_bad"] = log.n_bad
    click.echo(json.dumps(report, sort_keys=False))
    sys.stdout.flush()
