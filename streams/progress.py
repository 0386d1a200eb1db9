"""Progress of long commands: a bar on a terminal, a line every few seconds elsewhere.

A progress bar only draws on a terminal, so a command whose stderr goes to a log file
said nothing at all for minutes (``produce --rate 1000`` of 100,000 rows: 100 s). Off a
terminal, a background thread prints one plain line per interval instead, so a stalled
command (e.g. waiting for delivery reports) still shows where it is.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Any, TypeVar

import click

#: Seconds between progress lines when stderr is not a terminal (``--progress-interval``).
DEFAULT_INTERVAL_S = 10.0
_interval_s = DEFAULT_INTERVAL_S

T = TypeVar("T")


def configure(interval_s: float) -> None:
    global _interval_s
    _interval_s = interval_s


def _stderr() -> Any:
    return click.get_text_stream("stderr")


class Progress:
    """Count work done; show it as a bar (terminal) or as periodic lines (anything else).

    Parameters
    ----------
    label
        What is being done, e.g. ``"producing to page-views"``.
    total
        How many units there will be, if known.
    unit
        Name of a unit in the lines, e.g. ``"page views"``.
    """

    def __init__(self, label: str, total: int | None = None, unit: str = "") -> None:
        self.label = label
        self.total = total
        self.unit = f" {unit}" if unit else ""
        self.done = 0
        self.started = time.monotonic()
        self._tty = bool(_stderr().isatty())
        self._bar: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Progress:
        self.started = time.monotonic()
        if self._tty:
            self._bar = click.progressbar(length=self.total, label=self.label, file=_stderr())
            self._bar.__enter__()
        else:
            self._thread = threading.Thread(target=self._report, name="progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(1.0)
        if self._bar is not None:
            self._bar.__exit__(exc_type, exc, tb)

    def update(self, n: int = 1) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)

    def iterate(self, items: Iterable[T]) -> Iterator[T]:
        """Yield ``items``, counting each."""
        for item in items:
            self.update(1)
            yield item

    def line(self) -> str:
        elapsed = time.monotonic() - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        of, share = "", ""
        if self.total:
            of, share = f" of {self.total:,}", f" ({100.0 * self.done / self.total:.0f}%)"
        return (
            f"{self.label}: {self.done:,}{of}{self.unit}{share} after {elapsed:.0f} s "
            f"({rate:,.0f}/s)"
        )

    def _report(self) -> None:
        while not self._stop.wait(_interval_s):
            click.echo(self.line(), file=_stderr())
