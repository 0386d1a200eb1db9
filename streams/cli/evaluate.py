"""``streamrec evaluate``: prequential metrics of a model on a page-view file, as JSON."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from online_model.data.events_file import read_events
from online_model.errors import ModelError
from online_model.evaluation import evaluate, retrain_cadence
from online_model.registry import DEFAULT_MODEL, make_model
from streams.cli.options import (
    Count,
    k_option,
    model_option,
    param_option,
    parse_params,
    setting_option,
)
from streams.errors import ConfigurationError
from streams.progress import Progress


@click.command("evaluate")
@setting_option(
    "--input",
    "input_path",
    setting="evaluate_input",
    required=True,
    type=click.Path(dir_okay=False),
    help="CSV (user_id,page_id,ts_ms[,session_id]) or JSONL page views; a name ending in "
    ".gz (views.csv.gz) is gunzipped as it is read.",
)
@model_option()
@k_option("Length of each recommendation list.", default=10)
@param_option()
@setting_option(
    "--skip-bad",
    setting="evaluate_skip_bad",
    is_flag=True,
    default=False,
    help="Skip and count malformed rows instead of failing.",
)
@setting_option(
    "--retrain-every",
    setting="evaluate_retrain_every",
    type=Count(0),
    default=None,
    help="Refit the model's batch layer every N events, on the events before the refit "
    "only (models with a batch layer, e.g. hybrid; 0 = never). "
    "[default: the model's own cadence, hybrid: 10000]",
)
def command(
    input_path: str,
    model_spec: str | None,
    k: int,
    params: tuple[str, ...],
    skip_bad: bool,
    retrain_every: int | None,
) -> None:
    """Replay a page-view file test-then-train and print one JSON report on stdout."""
    model_name = model_spec or DEFAULT_MODEL
    spec_params = parse_params(params)
    model = make_model(model_name, spec_params)
    try:
        retrain_every = retrain_cadence(model, retrain_every)
    except ModelError as exc:
        raise ConfigurationError(f"--retrain-every: {exc}") from exc
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
            params=spec_params,
            progress=progress,
            progress_every=1000,
            retrain_every=retrain_every,
        )
    report["n_bad"] = log.n_bad
    click.echo(json.dumps(report, sort_keys=False))
    sys.stdout.flush()
