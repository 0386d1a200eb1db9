"""Run a job again and again, ``--every`` apart, until a signal stops it.

Runs start ``period`` apart (start to start); one that outlasts the period is followed by
the next at once. Between runs the next start is printed, so a wrong period shows at
the first wait (``next run at 2026-12-06T15:00:00Z (in 6h)``). Ctrl-C stops at once;
SIGTERM lets a run in progress finish. Either way one line says whether a run was cut
short, and the exit status is the shell's for death by that signal (130, 143).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import click

from streams.durations import format_duration


def utc_text(epoch_s: float) -> str:
    """``2026-12-06T15:00:00Z``: a wall-clock time as the log lines write it."""
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _about(seconds: float) -> str:
    """``6h``, ``5h59m``, ``42s``: whole minutes from ten minutes on, else whole seconds."""
    step = 60 if seconds >= 600 else 1
    return format_duration(max(1, round(seconds / step)) * step)


def repeat(
    run: Callable[[], object],
    period: float,
    *,
    wait: Callable[[float], bool] | None = None,
    now: Callable[[], float] = time.time,
) -> int:
    """Call ``run`` every ``period`` seconds until SIGINT or SIGTERM; the exit status.

    ``wait(seconds)`` returns True when stopped early (default: a SIGTERM; a Ctrl-C
    raises ``KeyboardInterrupt`` as usual).
    """
    stop = threading.Event()
    received: list[int] = []

    def on_term(signum: int, _frame: Any) -> None:
        received.append(signum)
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_term)
    wait = wait or stop.wait
    runs, running = 0, False
    try:
        while not stop.is_set():
            started = now()
            runs, running = runs + 1, True
            run()
            running = False
            if stop.is_set():
                break
            next_at = started + period
            ahead = next_at - now()
            if ahead <= 0:
                click.echo(
                    f"run {runs} took longer than --every ({format_duration(period)}); "
                    "next run starts now",
                    err=True,
                )
                continue
            click.echo(f"next run at {utc_text(next_at)} (in {_about(ahead)})", err=True)
            if wait(ahead):
                break
    except KeyboardInterrupt:
        received.insert(0, signal.SIGINT)
    finally:
        signal.signal(signal.SIGTERM, previous)
    signum = received[0] if received else signal.SIGTERM
    state = f"run {runs} interrupted" if running else "no run in progress"
    click.echo(f"stopped by {signal.Signals(signum).name}; {state}", err=True)
    return 128 + signum
