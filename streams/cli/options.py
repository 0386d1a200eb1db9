"""Options every command spells the same way, and the one ``key=value`` parser.

``--model``, ``--param``, ``--k`` and ``--json`` mean the same thing in every command that
takes them, fall back to the same settings and reject the same bad values. Every option's
environment fallback is a field of :class:`~streams.settings.Settings`, read by
:func:`~streams.settings.env_value` like every setting (:func:`setting_option`): no command
reads a ``STREAMREC_*`` variable itself. Numbers
are :class:`Count` (ASCII digits only: ``5_0`` or a fullwidth ``5`` is refused, as in the
settings and the REST API); durations are :class:`Duration` (``90s``, ``30m``, ``6h``: a
bare number is refused, as in the settings).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from streams.durations import parse_duration
from streams.errors import ConfigurationError
from streams.settings import MAX_K, Settings, env_value, parse_count, renamed_variable

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
    value as typed (``--every 6: give a unit, e.g. 6s, 6m or 6h``); a variable's value is
    checked where it is read (``STREAMREC_RETRAIN_EVERY='6' is not valid: ...``).
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
    """``--every 6``: the option as typed."""
    if param is None:
        return str(value)
    return f"{param.opts[0] if param.opts else param.name} {value}"


class _SettingOption(click.Option):
    """An option whose environment fallback is a field of :class:`~streams.settings.Settings`:
    click asks it for the variable's value, and it answers with what
    :func:`~streams.settings.env_value` reads (parsed there, like every setting)."""

    def __init__(self, *args: Any, setting: str, **kwargs: Any) -> None:
        self.setting = setting
        super().__init__(*args, **kwargs)

    def value_from_envvar(self, ctx: click.Context) -> Any:
        value = env_value(self.setting)
        if value is None:
            return None
        return tuple(value) if self.multiple else value


def setting_option(*decls: str, setting: str, **kwargs: Any) -> Any:
    """``click.option`` whose environment fallback is the field ``setting`` of
    :class:`~streams.settings.Settings` (read by :func:`~streams.settings.env_value`, as
    every setting is), named in the help text."""
    var = Settings.env_var(setting)
    old = renamed_variable(setting)
    shown = var if old is None else f"{var}; formerly {old}"
    kwargs["help"] = f"{kwargs.get('help', '')}  [env var: {shown}]".strip()
    return click.option(*decls, cls=_SettingOption, setting=setting, **kwargs)


def model_option(help_suffix: str = "") -> Any:
    return setting_option(
        "--model",
        "model_spec",
        setting="model_spec",
        default=None,
        help="Model: covisit, popularity, mf, blend, hybrid, or package.module:Class. "
        f"[default: covisit]{help_suffix}",
    )


def param_option() -> Any:
    return setting_option(
        "--param",
        "params",
        setting="model_params",
        multiple=True,
        metavar="KEY=VALUE",
        help="Model constructor parameter; repeat it (the variable is space-separated).",
    )


def k_option(help_text: str = "Pages per list.", default: int | None = None) -> Any:
    """``--k``; ``default=None`` leaves the default to the settings (``STREAMREC_K``)."""
    return setting_option(
        "--k",
        setting="k",
        type=Count(1, MAX_K),
        default=default,
        show_default=default is not None,
        help=help_text if default is not None else f"{help_text} [default: 10]",
    )


def json_option(setting: str, help_text: str = "Print JSON.") -> Any:
    """``--json``, falling back to the boolean setting ``setting``."""
    return setting_option(
        "--json", "as_json", setting=setting, is_flag=True, default=False, help=help_text
    )


def _stack(*decorators: Any) -> Callable[[F], F]:
    def apply(func: F) -> F:
        for decorator in reversed(decorators):
            func = decorator(func)
        return func

    return apply


def range_options(command: str, to_default: str) -> Callable[[F], F]:
    """``--from``/``--to``: the record-time range a command reads (``start``, ``end``)."""
    return _stack(
        setting_option(
            "--from",
            "start",
            setting=f"{command}_from",
            help="Start of the range (inclusive): ISO-8601 (UTC if no zone) or epoch ms. "
            "[default: the beginning of the topic]",
        ),
        setting_option(
            "--to",
            "end",
            setting=f"{command}_to",
            help=f"End of the range (exclusive), same formats. [default: {to_default}]",
        ),
    )


def publish_options(command: str, gate_help: str) -> Callable[[F], F]:
    """``--publish none|candidate|live`` (``publish_mode``) and ``--gate METRIC``."""
    return _stack(
        setting_option(
            "--publish",
            "publish_mode",
            type=click.Choice(["none", "candidate", "live"]),
            default="none",
            show_default=True,
            setting=f"{command}_publish",
            help="none: only print; candidate: store it, current unchanged; live: store "
            "and promote it (pinned).",
        ),
        setting_option(
            "--gate",
            default=None,
            metavar="METRIC",
            setting=f"{command}_gate",
            help=gate_help,
        ),
    )


def reading_options(command: str, lateness_help: str = "") -> Callable[[F], F]:
    """How a command reads the topic: ``--idle-timeout``, ``--lateness``, ``--topic``."""
    return _stack(
        setting_option(
            "--idle-timeout",
            type=Duration(),
            default="5s",
            show_default=True,
            setting=f"{command}_idle_timeout",
            help="Time without a record (e.g. 5s, 2m) after which a partition counts as read.",
        ),
        setting_option(
            "--lateness",
            type=Duration(zero=True),
            default="0s",
            show_default=True,
            setting=f"{command}_lateness",
            help="How long past --to (e.g. 30s, 10m) a record must be stamped before its "
            f"partition counts as read.{lateness_help}",
        ),
        setting_option(
            "--topic",
            default=None,
            setting="topic_page_views",
            help="Topic to read. [default: page-views]",
        ),
    )


def pages_topic_option() -> Any:
    """``--topic`` of the catalog commands (``pages_topic``): the compacted catalog topic."""
    return setting_option(
        "--topic",
        "pages_topic",
        setting="topic_pages",
        default=None,
        help="Catalog topic. [default: pages]",
    )
