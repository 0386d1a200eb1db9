"""SIGINT and SIGTERM as a flag that long-running commands check between bounded calls.

Python's default SIGINT handler raises ``KeyboardInterrupt`` wherever the main thread
is, including inside a librdkafka call that is running one of our callbacks; the C
extension then returns NULL without an exception (``SystemError``) and the command dies
without its report. A handler that only records the signal cannot break anything, so
the CLI installs it before its heavy imports (:func:`defer`). A command that checks
:func:`received` keeps it (:func:`handles_signals`); every other command gets the usual
handlers back before it runs, and a signal that arrived meanwhile is delivered then.

Importing this module must stay cheap: it runs before anything else of the CLI.
"""

from __future__ import annotations

import os
import signal
import sys

TYPE_CHECKING = False  # importing typing costs up to 0.1 s on busy cores; mypy knows the name
if TYPE_CHECKING:
    from types import FrameType
    from typing import Any, TypeVar

    C = TypeVar("C")

_HANDLED = (signal.SIGINT, signal.SIGTERM)
_received: list[int] = []
_previous: dict[int, Any] = {}


def _record(signum: int, _frame: FrameType | None) -> None:
    _received.append(signum)


def starting_the_program() -> bool:
    """True while ``streamrec`` or ``python -m streams.cli`` imports the CLI.

    (Python sets ``argv[0]`` to ``-m`` while it imports the package of ``-m``.) Tests and
    other programs that import the CLI keep their own signal handling.
    """
    program = sys.argv[0] if sys.argv else ""
    return program == "-m" or os.path.basename(program) == "streamrec"


def defer() -> None:
    """From now on SIGINT/SIGTERM only set the flag (until :func:`restore`)."""
    for sig in _HANDLED:
        previous = signal.signal(sig, _record)
        _previous.setdefault(sig, previous)


def restore() -> None:
    """Give back the handlers :func:`defer` replaced; deliver a signal that came meanwhile."""
    for sig, previous in _previous.items():
        signal.signal(sig, previous)
    _previous.clear()
    if _received:
        first = _received[0]
        _received.clear()
        signal.raise_signal(first)


def release() -> None:
    """Give back the handlers :func:`defer` replaced, forgetting what was received
    (the command has dealt with it)."""
    _received.clear()
    restore()


def received() -> int | None:
    """The first SIGINT/SIGTERM received since :func:`defer`, or None."""
    return _received[0] if _received else None


def count() -> int:
    """How many were received (a second Ctrl-C cuts a grace period short)."""
    return len(_received)


def exit_code(signum: int) -> int:
    """The shell's convention for death by a signal: 130 for SIGINT, 143 for SIGTERM."""
    return 128 + signum


def name(signum: int) -> str:
    return signal.Signals(signum).name


def handles_signals(command: C) -> C:
    """Mark a click command as one that checks :func:`received` itself."""
    command.streamrec_handles_signals = True  # type: ignore[attr-defined]
    return command


def wants_flag(command: object) -> bool:
    return bool(getattr(command, "streamrec_handles_signals", False))
