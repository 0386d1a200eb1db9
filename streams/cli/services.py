"""``streamrec up | down | status``: the embedded broker and Redis-compatible server."""

from __future__ import annotations

import json

import click

from streams.api_tokens import new_token
from streams.cli.options import Duration, setting_option
from streams.scorer.auth import curl_example
from streams.services.embedded import EmbeddedServices
from streams.settings import Settings


@click.command("up")
@setting_option(
    "--timeout",
    type=Duration(),
    default="30s",
    show_default=True,
    setting="up_timeout",
    help="How long to wait for each service to answer (e.g. 30s, 2m).",
)
def up(timeout: float) -> None:
    """Start the embedded services that are not configured externally (idempotent)."""
    settings = Settings.from_env()
    services = EmbeddedServices(settings)
    started = services.up(timeout=timeout)
    for status in services.status():
        click.echo(status.line())
    if not services.wanted():
        click.echo("external services configured; nothing to start")
    elif not started:
        click.echo("already running; nothing started")
    if not settings.api_tokens:
        # Scorers started without tokens answer anyone who reaches them (on loopback only).
        token = new_token()
        click.echo(
            "scorers' REST API: no STREAMREC_API_TOKENS set; to require a token (one made "
            f"now, admin role):\n  export STREAMREC_API_TOKENS=ops:admin:{token}\n"
            f"  then, with a scorer running: {curl_example(settings, token)}"
        )


@click.command("down")
def down() -> None:
    """Stop exactly what `streamrec up` started (nothing running is fine)."""
    stopped = EmbeddedServices(Settings.from_env()).down()
    click.echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing to stop")


@click.command("status")
@setting_option(
    "--json",
    "as_json",
    is_flag=True,
    setting="status_json",
    help="Print JSON instead of a table.",
)
def status(as_json: bool) -> None:
    """Each service: address, reachable or not, and who started it. Exit 1 if any is down."""
    statuses = EmbeddedServices(Settings.from_env()).status()
    if as_json:
        click.echo(json.dumps({s.name: s.__dict__ for s in statuses}))
    else:
        for s in statuses:
            click.echo(s.line())
    if not all(s.reachable for s in statuses):
        raise SystemExit(1)


commands = [up, down, status]
