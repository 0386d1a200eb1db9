"""``streamrec scorer``: run one Faust scorer worker."""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

import click

from streams.cli.options import Count, k_option, setting_option
from streams.errors import ConfigurationError
from streams.io.topics import ensure_topics
from streams.settings import SCORER_ENGINES, Settings

if TYPE_CHECKING:
    from streams.scorer.runtime import ScorerRuntime


def run_scorer(settings: Settings, loglevel: str = "warn") -> None:
    """Run the scorer until SIGTERM/SIGINT with the engine ``settings`` names (blocks;
    exits the process)."""
    runtime = prepare(settings)
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    # Promote, rollback and follow over REST are an audit trail: logged at any log level.
    logging.getLogger("streams.lifecycle.model_actions").setLevel(logging.INFO)
    if settings.scorer_engine == "kafka":
        from streams.scorer import kafka_engine

        def say_ready() -> None:
            click.echo(ready_line(settings, runtime), err=True)

        sys.exit(kafka_engine.run(settings, runtime, say_ready))
    run_faust(settings, runtime, loglevel)


def prepare(settings: Settings) -> ScorerRuntime:
    """What every engine checks and loads before it consumes: the bind address, the web
    port, Kafka and Redis, the topics; the experiment, stored model and catalog."""
    from streams.scorer.auth import check_bind
    from streams.scorer.runtime import ScorerRuntime
    from streams.services.embedded import port_in_use
    from streams.services.probes import require

    check_bind(settings)
    if port_in_use(settings.web_port, settings.web_bind):
        raise ConfigurationError(
            f"port {settings.web_port} is in use (another scorer?): give each scorer on a "
            "host its own STREAMREC_WEB_PORT"
        )
    require(settings, kafka=True, redis=True)
    ensure_topics(settings)
    history = None
    if settings.scorer_engine == "kafka":
        from streams.scorer.threaded_history import ThreadedHistoryStore

        history = ThreadedHistoryStore.for_scorer(settings)
    runtime = ScorerRuntime(settings, history=history)
    runtime.follow_experiment()  # a running experiment's arms apply from the first batch
    runtime.load_model()  # the REST API opens with the stored model, not the cold start
    runtime.follow_catalog()  # and never serves a hidden page it has not read yet
    return runtime


def run_faust(settings: Settings, runtime: ScorerRuntime, loglevel: str = "warn") -> None:
    """The ``faust`` engine: a Faust worker with the scorer agent."""
    import faust

    from streams.scorer.app import create_app

    try:
        import uvloop

        uvloop.install()  # measured: ~25% more events/s through Faust's per-event machinery
    except ImportError:  # pragma: no cover - optional on non-Linux
        pass
    app = create_app(settings, runtime)
    worker = faust.Worker(
        app, loglevel=loglevel, quiet=True, redirect_stdouts=False, override_logging=False
    )
    if not sys.stdout.isatty():
        worker.spinner = None  # it writes cursor escape codes even into a log file
    started = worker.on_startup_finished

    async def say_ready() -> None:
        await started()
        click.echo(ready_line(settings, runtime), err=True)

    worker.on_startup_finished = say_ready  # type: ignore[method-assign]
    worker.execute_from_commandline()


def ready_line(settings: Settings, runtime: ScorerRuntime) -> str:
    """The one line a scorer prints when its REST API is up."""
    served = runtime.holder.current
    model = (
        f"version {served.version} ({served.model_class})"
        if not served.is_fallback
        else "version 0 (cold-start popularity: no snapshot yet)"
    )
    host = f"[{settings.web_bind}]" if ":" in settings.web_bind else settings.web_bind
    access = "bearer token required" if settings.api_tokens else "no token"
    return (
        f"scorer ready: http://{host}:{settings.web_port} (/recommendations/<user>, "
        f"/readyz, /livez, /metrics, /openapi.json; {access}); "
        f"model {settings.model_name}"
        + (f" serving {runtime.serving}" if runtime.serving != settings.model_name else "")
        + f" {model}; "
        f"consuming {settings.topic_page_views} at {settings.bootstrap_servers}"
    )


@click.command("scorer")
@setting_option(
    "--web-port",
    type=Count(1),
    default=None,
    setting="web_port",
    help="Port of the REST API (/recommendations, /healthz, /metrics). [default: 6066]",
)
@k_option("Pages per recommendation.")
@setting_option(
    "--batch-size",
    type=Count(1),
    default=None,
    setting="batch_size",
    help="Most page views scored per batch. [default: 500]",
)
@setting_option(
    "--engine",
    type=click.Choice(SCORER_ENGINES),
    default=None,
    setting="scorer_engine",
    help="What drives the scorer: a confluent-kafka consumer loop (kafka) or a Faust "
    "worker (faust); the same scoring, REST API and guarantees. [default: kafka]",
)
def command(
    web_port: int | None, k: int | None, batch_size: int | None, engine: str | None
) -> None:
    """Score page views into recommendations (scale by running more, up to the partitions).

    Its REST API listens on STREAMREC_WEB_BIND (127.0.0.1 unless told); with
    STREAMREC_API_TOKENS (name:role:token,...) it wants a bearer token.
    """
    settings = Settings.from_env(
        web_port=web_port, k=k, batch_size=batch_size, scorer_engine=engine
    )
    run_scorer(settings)
