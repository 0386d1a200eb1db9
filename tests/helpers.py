"""Helpers for tests that run streamrec processes against real services."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Message

from streams.settings import Settings


class Proc:
    """A streamrec CLI subprocess with its output in a log file."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.args = args
        self.log = log
        self._out = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", *args],
            env=env,
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        self._out.close()
        return int(self.popen.returncode)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def http_json(url: str, timeout: float = 2.0) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def http_text(url: str, timeout: float = 2.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return str(response.read().decode())


def wait_for(condition: Callable[[], Any], timeout: float, what: str, every: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception as exc:  # the service may not be up yet
            last_exc = exc
        time.sleep(every)
    raise AssertionError(
        f"timed out after {timeout} s waiting for {what} (last error {last_exc!r})"
    )


def wait_ready(settings: Settings, proc: Proc, timeout: float = 60.0) -> None:
    """Wait until the scorer's REST API answers /healthz."""

    def ready() -> bool:
        assert proc.alive(), proc.output()[-3000:]
        status, _ = http_json(f"http://127.0.0.1:{settings.web_port}/healthz")
        return status == 200

    wait_for(ready, timeout, "scorer /healthz")


class TopicReader:
    """Reads a topic from the beginning with a fresh consumer group."""

    def __init__(self, settings: Settings, topic: str, group: str) -> None:
        self.consumer = Consumer(settings.consumer_config(group, **{"fetch.wait.max.ms": 50}))
        self.consumer.subscribe([topic])
        self.messages: list[Message] = []

    def read_until(self, done: Callable[[list[Message]], bool], timeout: float) -> list[Message]:
        deadline = time.monotonic() + timeout
        while not done(self.messages) and time.monotonic() < deadline:
            for msg in self.consumer.consume(1000, 0.5):
                if msg.error() is None:
                    self.messages.append(msg)
        return self.messages

    def close(self) -> None:
        self.consumer.close()
