"""``streamrec demo``: the main job, on embedded services unless told otherwise."""

from __future__ import annotations

import json

import click

from streams.cli.options import Duration, setting_option
from streams.demo.run import result_json, run_demo
from streams.settings import Settings


@click.command("demo")
@setting_option(
    "--duration",
    type=Duration(),
    default="30s",
    show_default=True,
    setting="demo_duration",
    help="How long to produce page views (e.g. 30s, 5m).",
)
@setting_option(
    "--rate",
    default=300.0,
    show_default=True,
    setting="demo_rate",
    help="Page views per second.",
)
@setting_option(
    "--users",
    default=500,
    show_default=True,
    setting="demo_users",
    help="Synthetic users.",
)
@setting_option(
    "--pages",
    default=300,
    show_default=True,
    setting="demo_pages",
    help="Synthetic pages.",
)
@setting_option(
    "--json",
    "as_json",
    is_flag=True,
    setting="demo_json",
    help="Also print the summary as one JSON line on stdout.",
)
def command(duration: float, rate: float, users: int, pages: int, as_json: bool) -> None:
    """Run trainer + scorer on synthetic page views and print a summary."""
    result = run_demo(Settings.from_env(), duration, rate, users, pages)
    click.echo(result.summary(), err=not as_json)
    if as_json:
        click.echo(json.dumps(result_json(result)))
    if result.produced and result.missing:
        raise SystemExit(1)
