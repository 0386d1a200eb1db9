"""Child processes of streamrec's own commands, and waiting for a condition.

The demo, the benchmarks and the tests all start ``streamrec`` subprocesses (a trainer,
a scorer, ...) with their output in a log file, stop them with a signal and a deadline,
and wait for something to become true; this module is the one way they do it.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, TypeVar

T = TypeVar("T")


class ChildProcess:
    """A subprocess with its stdout and stderr in a log file (appended to)."""

    def __init__(
        self,
        argv: Sequence[str],
        env: dict[str, str],
        log_path: Path,
        name: str | None = None,
        cwd: Path | None = None,
    ) -> None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.name = name or Path(argv[0]).name
        self.log_path = log_path
        self.started = time.time()
        self._log: IO[bytes] = open(log_path, "ab")  # noqa: SIM115 - closed in stop()/wait()
        #: Where this process's output begins in the log (earlier runs' output precedes it).
        self.log_start = self._log.tell()
        self.popen = subprocess.Popen(
            list(argv), env=env, stdout=self._log, stderr=subprocess.STDOUT, cwd=cwd
        )

    @classmethod
    def streamrec(
        cls, args: Sequence[str], env: dict[str, str], log_path: Path, name: str | None = None
    ) -> ChildProcess:
        """``python -m streams.cli ARGS`` with this interpreter."""
        argv = [sys.executable, "-m", "streams.cli", *args]
        return cls(argv, env, log_path, name=name or (args[0] if args else "streamrec"))

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def own_output(self) -> str:
        """What this process wrote to its log (not the earlier runs' output before it)."""
        with open(self.log_path, "rb") as f:
            f.seek(self.log_start)
            return f.read().decode(errors="replace")

    def check(self) -> None:
        """Raise with the end of the log if the process has exited."""
        if not self.alive():
            raise RuntimeError(
                f"{self.name} exited with {self.popen.returncode}: {self.output()[-2000:]}"
            )

    def peak_rss_mb(self) -> float | None:
        """VmHWM (peak resident set) from /proc; read it before stopping."""
        return peak_rss_mb(self.popen.pid)

    def wait(self, timeout: float) -> int:
        """Wait for the process to exit by itself; its exit code."""
        try:
            return self.popen.wait(timeout)
        finally:
            self._log.close()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        """Send ``sig`` (SIGTERM), wait up to ``timeout``, then SIGKILL; the exit code."""
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        self._log.close()
        return int(self.popen.returncode)


def peak_rss_mb(pid: int) -> float | None:
    """Peak resident set of a live process in MB, from /proc (None where unreadable)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def wait_for(condition: Callable[[], T], timeout: float, what: str, every: float = 0.2) -> T:
    """Call ``condition`` until it returns something truthy, and return that.

    Exceptions count as "not yet" (a service may still be starting); the last one is
    named in the :class:`TimeoutError` raised after ``timeout`` seconds.

    >>> wait_for(lambda: 42, 1.0, "the answer")
    42
    """
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while True:
        try:
            value = condition()
            if value:
                return value
        except Exception as exc:
            last_exc = exc
        if time.monotonic() >= deadline:
            break
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what} (last error {last_exc!r})")
