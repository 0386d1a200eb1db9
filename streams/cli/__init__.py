"""The ``streamrec`` command line: one command per module in this package.

Every module here that defines ``command`` (a click command) or ``commands`` (a list of
them) is picked up, so adding a command is adding a module. Every flag has an
environment fallback, shown in ``--help``.
"""

from __future__ import annotations

# First of all, when this is the `streamrec` program: from here on a Ctrl-C or SIGTERM is
# recorded, never raised in the middle of an import or a librdkafka call (see _signals);
# commands that do not check the flag get the usual handlers back before they run.
from streams.cli import _signals  # isort: skip

if _signals.starting_the_program():
    _signals.defer()

import importlib
import logging
import os
import pkgutil
import sys
from typing import Any

import click

from online_model.errors import StreamrecError
from streams import progress as _progress
from streams.cli.options import Duration, setting_option


def _redis_error_line(exc: BaseException) -> str | None:
    if not type(exc).__module__.startswith("redis"):
        return None  # redis is not imported for the commands that never use it
    from streams.state.connection import redis_error_line

    return redis_error_line(exc)


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    # aiokafka builds debug records on every send; keeping it quiet is worth ~15% CPU.
    logging.getLogger("aiokafka").setLevel(logging.WARNING)


class _Group(click.Group):
    """Every failure a user can cause ends the same way: ``error: ...`` on stderr, exit 2.

    So does any Redis error that reaches a command (a peer that is not Redis, an ACL or
    credentials refusal). Click's own usage errors (``Error: ...``, exit 2) and an
    operating system's refusal (a file that cannot be written, a port in use) are reported
    the same way instead of as click's wording or a traceback.
    """

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except StreamrecError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(2)
        except OSError as exc:
            where = f" ({exc.filename})" if exc.filename else ""
            click.echo(f"error: {exc.strerror or exc}{where}", err=True)
            ctx.exit(2)
        except Exception as exc:
            # Any Redis error (a non-Redis peer, ACL, auth) is one line too, for every
            # command, whichever call met it.
            line = _redis_error_line(exc)
            if line is None:
                raise
            click.echo(f"error: {line}", err=True)
            ctx.exit(2)

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("standalone_mode", True)
        if not kwargs["standalone_mode"]:
            return super().main(*args, **kwargs)
        try:
            result = super().main(*args, **{**kwargs, "standalone_mode": False})
        except click.UsageError as exc:
            if exc.ctx is not None:
                click.echo(exc.ctx.get_usage(), err=True)
            click.echo(f"error: {exc.format_message()}", err=True)
            sys.exit(2)
        except click.ClickException as exc:
            click.echo(f"error: {exc.format_message()}", err=True)
            sys.exit(2)
        except click.Abort:
            click.echo("interrupted", err=True)
            sys.exit(130)
        # Without standalone mode click returns ctx.exit()'s code instead of exiting.
        sys.exit(result if isinstance(result, int) else 0)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@setting_option(
    "--log-level",
    default="warning",
    setting="log_level",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
    help="Log level for library messages on stderr.",
)
@setting_option(
    "--progress-interval",
    default=f"{_progress.DEFAULT_INTERVAL_S:g}s",
    setting="progress_interval",
    show_default=True,
    type=Duration(),
    help="Time between progress lines of long commands when stderr is not a terminal "
    "(e.g. 10s, 1m).",
)
@click.pass_context
def main(ctx: click.Context, log_level: str, progress_interval: float) -> None:
    """streamrec: real-time page recommendations over Kafka.

    Services: KAFKA_BOOTSTRAP_SERVERS and REDIS_URL point at real ones; without them,
    the embedded broker and Redis-compatible server on loopback are used (`streamrec up`).
    """
    _configure_logging(log_level)
    _progress.configure(progress_interval)
    sub = main.get_command(ctx, ctx.invoked_subcommand) if ctx.invoked_subcommand else None
    if not _signals.wants_flag(sub):
        _signals.restore()


def _register() -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for command in [getattr(module, "command", None), *getattr(module, "commands", [])]:
            if isinstance(command, click.Command):
                main.add_command(command)


_register()

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(prog_name=os.path.basename(sys.argv[0])))
