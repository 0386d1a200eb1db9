"""Options every command spells the same way, and the one ``key=value`` parser.

``--model``, ``--param``, ``--k`` and ``--json`` mean the same thing in every command that
takes them, read the same environment variables and reject the same bad values. Numbers
are :class:`Count` (ASCII digits only: ``5_0`` or a fullwidth ``5`` is refused, as in the
settings and the REST API); durations are :class:`Duration` (``90s``, ``30m``, ``6h``: a
bare number is refused, as in the settings).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from streams.durations import parse_duration
from streams.errors import ConfigurationError
from streams.settings import MAX_K, parse_count

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


def parse_params(pairs: Sequence[str]) -> dict[str, str]:
    """``["window=3", "half_life=100"]`` -> ``{"window": "3", "half_life": "100"}``.

    >>> parse_params(["window=3", " recency = 0.5"])
    {'window': '3', 'recency': '0.5'}
    """
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ConfigurationError(f"--param must look like key=value, got {pair!r}")
        out[name.strip()] = value.strip()
    return out


class Count(click.ParamType):
    """A whole number in ``[low, high]`` written with ASCII digits only."""

    name = "integer"

    def __init__(self, low: int = 0, high: int | None = None) -> None:
        self.low, self.high = low, high

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        else:
            try:
                number = parse_count(str(value))
            except ValueError:
                self.fail(f"{value!r} is not a whole number (digits 0-9 only)", param, ctx)
        if number < self.low or (self.high is not None and number > self.high):
            upper = "" if self.high is None else f" to {self.high}"
            self.fail(f"{number} is not in the range {self.low}{upper}", param, ctx)
        return number

    def __repr__(self) -> str:
        return f"Count({self.low}, {self.high})"


class Duration(click.ParamType):
    """A duration with its unit (:func:`~streams.durations.parse_duration`), as seconds.

    Zero (``0``, ``0s``) only where ``zero`` allows it. The error names the option and the
    value as typed (``--every 6: give a unit, e.g. 6s, 6m or 6h``), or the environment
    variable when the value came from there.
    """

    name = "duration"

    def __init__(self, zero: bool = False) -> None:
        self.zero = zero

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)  # a default given in code, already seconds
        try:
            seconds = parse_duration(str(value))
        except ValueError as exc:
            raise click.UsageError(f"{_typed(value, param, ctx)}: {exc}", ctx) from None
        if seconds == 0 and not self.zero:
            raise click.UsageError(f"{_typed(value, param, ctx)}: must be longer than 0", ctx)
        return seconds

    def __repr__(self) -> str:
        return "DURATION"


def _typed(value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
    """``--every 6``, or ``STREAMREC_RETRAIN_EVERY=6`` when the value came from there."""
    if param is None:
        return str(value)
    source = ctx.get_parameter_source(param.name) if ctx is not None and param.name else None
    if source is ParameterSource.ENVIRONMENT:
        envvar = param.envvar
        names = [envvar] if isinstance(envvar, str) else list(envvar or ())
        for var in names:
            if os.environ.get(var):
                return f"{var}={value}"
    return f"{param.opts[0] if param.opts else param.name} {value}"


def env_option(*decls: str, env: str, renamed_from: str | None = None, **kwargs: Any) -> Any:
    """``click.option`` reading ``env``; ``renamed_from`` is an older variable name that
    still works, with a deprecation warning, when ``env`` is not set."""
    names = [env] if renamed_from is None else [env, renamed_from]

    def warn(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if (
            renamed_from
            and param.name
            and ctx.get_parameter_source(param.name) is ParameterSource.ENVIRONMENT
            and env not in os.environ
            and renamed_from in os.environ
        ):
            click.echo(f"warning: {renamed_from} is deprecated; set {env} instead", err=True)
        return value

    # The variable goes into the help text by hand: click's show_envvar would also name it
    # in every error about the option, even when the value came from the command line.
    shown = env if renamed_from is None else f"{env}; formerly {renamed_from}"
    kwargs["help"] = f"{kwargs.get('help', '')}  [env var: {shown}]".strip()
    return click.option(*decls, envvar=names, callback=warn, **kwargs)


def model_option(help_suffix: str = "") -> Any:
    return env_option(
        "--model",
        "model_spec",
        env="STREAMREC_MODEL",
        default=None,
        help="Model: covisit, popularity, mf, blend, hybrid, or package.module:Class. "
        f"[default: covisit]{help_suffix}",
    )


def param_option(renamed_from: str | None = None) -> Any:
    return env_option(
        "--param",
        "params",
        env="STREAMREC_MODEL_PARAMS",
        renamed_from=renamed_from,
        multiple=True,
        metavar="KEY=VALUE",
        help="Model constructor parameter; repeat it (the variable is space-separated).",
    )


def k_option(help_text: str = "Pages per list.", default: int | None = None) -> Any:
    """``--k``; ``default=None`` leaves the default to the settings (``STREAMREC_K``)."""
    return env_option(
        "--k",
        env="STREAMREC_K",
        type=Count(1, MAX_K),
        default=default,
        show_default=default is not None,
        help=help_text if default is not None else f"{help_text} [default: 10]",
    )


def json_option(env: str, help_text: str = "Print JSON.") -> Any:
    return env_option("--json", "as_json", env=env, is_flag=True, default=False, help=help_text)


def _stack(*decorators: Any) -> Callable[[F], F]:
    def apply(func: F) -> F:
        for decorator in reversed(decorators):
            func = decorator(func)
        return func

    return apply


def range_options(command: str, to_default: str) -> Callable[[F], F]:
    """``--from``/``--to``: the record-time range a command reads (``start``, ``end``)."""
    env = f"STREAMREC_{command.upper()}"
    return _stack(
        click.option(
            "--from",
            "start",
            default=None,
            envvar=f"{env}_FROM",
            show_envvar=True,
            help="Start of the range (inclusive): ISO-8601 (UTC if no zone) or epoch ms. "
            "[default: the beginning of the topic]",
        ),
        click.option(
            "--to",
            "end",
            default=None,
            envvar=f"{env}_TO",
            show_envvar=True,
            help=f"End of the range (exclusive), same formats. [default: {to_default}]",
        ),
    )


def publish_options(command: str, gate_help: str) -> Callable[[F], F]:
    """``--publish none|candidate|live`` (``publish_mode``) and ``--gate METRIC``."""
    env = f"STREAMREC_{command.upper()}"
    return _stack(
        click.option(
            "--publish",
            "publish_mode",
            type=click.Choice(["none", "candidate", "live"]),
            default="none",
            show_default=True,
            envvar=f"{env}_PUBLISH",
            show_envvar=True,
            help="none: only print; candidate: store it, current unchanged; live: store "
            "and promote it (pinned).",
        ),
        click.option(
            "--gate",
            default=None,
            metavar="METRIC",
            envvar=f"{env}_GATE",
            show_envvar=True,
            help=gate_help,
        ),
    )


def reading_options(command: str, lateness_help: str = "") -> Callable[[F], F]:
    """How a command reads the topic: ``--idle-timeout``, ``--lateness``, ``--topic``."""
    env = f"STREAMREC_{command.upper()}"
    return _stack(
        click.option(
            "--idle-timeout",
            type=Duration(),
            default="5s",
            show_default=True,
            envvar=f"{env}_IDLE_TIMEOUT",
            show_envvar=True,
            help="Time without a record (e.g. 5s, 2m) after which a partition counts as read.",
        ),
        click.option(
            "--lateness",
            type=Duration(zero=True),
            default="0s",
            show_default=True,
            envvar=f"{env}_LATENESS",
            show_envvar=True,
            help="How long past --to (e.g. 30s, 10m) a record must be stamped before its "
            f"partition counts as read.{lateness_help}",
        ),
        click.option(
            "--topic",
            default=None,
            envvar="STREAMREC_TOPIC_PAGE_VIEWS",
            show_envvar=True,
            help="Topic to read. [default: page-views]",
        ),
    )


def pages_topic_option() -> Any:
    """``--topic`` of the catalog commands (``pages_topic``): the compacted catalog topic."""
    return env_option(
        "--topic",
        "pages_topic",
        env="STREAMREC_TOPIC_PAGES",
        default=None,
        help="Catalog topic. [default: pages]",
    )
