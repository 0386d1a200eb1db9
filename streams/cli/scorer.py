"""``streamrec scorer``: run one Faust scorer worker."""

from __future__ import annotations

import logging

import click

from streams.settings import Settings


def run_scorer(settings: Settings, loglevel: str = "warn") -> None:
    """Run the scorer worker until SIGTERM/SIGINT (blocks; exits the process)."""
    import faust

    from streams.app import create_app
    from streams.ops.probes import require
    from streams.topics import ensure_topics

    try:
        import uvloop

        uvloop.install()  # measured: ~25% more events/s through Faust's per-event machinery
    except ImportError:  # pragma: no cover - optional on non-Linux
        pass
    require(settings, kafka=True, redis=True)
    ensure_topics(settings)
    app = create_app(settings)
    worker = faust.Worker(
        app, loglevel=loglevel, quiet=True, redirect_stdouts=False, override_logging=False
    )
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    worker.execute_from_commandline()


@click.command("scorer")
@click.option(
    "--web-port",
    type=int,
    default=None,
    envvar="STREAMREC_WEB_PORT",
    show_envvar=True,
    help="Port of the REST API (/recommendations, /healthz, /metrics). [default: 6066]",
)
@click.option(
    "--k",
    type=int,
    default=None,
    envvar="STREAMREC_K",
    show_envvar=True,
    help="Pages per recommendation. [default: 10]",
)
@click.option(
    "--batch-size",
    type=int,
    default=None,
    envvar="STREAMREC_BATCH_SIZE",
    show_envvar=True,
    help="Most page views scored per batch. [default: 500]",
)
def command(web_port: int | None, k: int | None, batch_size: int | None) -> None:
    """Score page views into recommendations (a Faust worker; scale by running more)."""
    settings = Settings.from_env(web_port=web_port, k=k, batch_size=batch_size)
    run_scorer(settings)
