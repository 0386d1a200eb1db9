"""``streamrec console``: serve a scorer's console page from a process of its own."""

from __future__ import annotations

import click

from streams.cli.options import Count, setting_option
from streams.errors import ConfigurationError
from streams.settings import Settings


@click.command("console")
@setting_option(
    "--scorer",
    "scorer_url",
    default="http://127.0.0.1:6066",
    setting="console_scorer",
    show_default=True,
    help="The scorer whose console this serves: http(s)://host[:port].",
)
@setting_option(
    "--port",
    type=Count(1, 65535),
    default=6070,
    setting="console_port",
    show_default=True,
    help="Port to listen on (address: STREAMREC_WEB_BIND).",
)
def command(scorer_url: str, port: int) -> None:
    """Serve the operations console of a scorer at http://<bind>:<port>/console.

    The page, its data and the model actions are forwarded to the scorer with the
    browser's bearer token, so the scorer checks tokens and records who acted. Like the
    scorer, it listens on STREAMREC_WEB_BIND (127.0.0.1 unless told) and refuses an
    address beyond loopback unless STREAMREC_API_TOKENS is set (or STREAMREC_INSECURE_DEV=1).
    """
    from aiohttp import web

    from streams.scorer.auth import check_bind
    from streams.scorer.console_proxy import create_app, scorer_base
    from streams.services.embedded import port_in_use

    settings = Settings.from_env()
    check_bind(settings)
    base = scorer_base(scorer_url)
    if port_in_use(port, settings.web_bind):
        raise ConfigurationError(f"port {port} is in use: choose another with --port")
    host = f"[{settings.web_bind}]" if ":" in settings.web_bind else settings.web_bind
    click.echo(f"console ready: http://{host}:{port}/console (scorer {base})", err=True)
    web.run_app(create_app(base), host=settings.web_bind, port=port, print=None)
