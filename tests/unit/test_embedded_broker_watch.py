"""A trainer on the embedded broker warns before the broker's memory or CPU hurts."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path

import pytest

from streams.services import embedded_broker_watch as watch_module
from streams.services.embedded import EmbeddedServices
from streams.services.embedded_broker_watch import EmbeddedBrokerWatch
from streams.settings import Settings


def broker_recorded_as(state_dir: Path, pid: int, port: int) -> None:
    """A services.json as `streamrec up` writes it (this test process stands in)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    entry = {"pid": pid, "port": port, "binary": sys.executable, "log": "", "started_at": 0.0}
    (state_dir / "services.json").write_text(json.dumps({"kafka": entry}))


def stand_in(tmp_path: Path, **overrides: object) -> Settings:
    broker_recorded_as(tmp_path, os.getpid(), 41234)
    return Settings(kafka_bootstrap_servers="127.0.0.1:41234", state_dir=tmp_path, **overrides)  # type: ignore[arg-type]


def test_warns_past_the_memory_limit_then_at_each_doubling(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    watch = EmbeddedBrokerWatch(stand_in(tmp_path, broker_memory_warn_mb=1))
    with caplog.at_level(logging.WARNING, "streams.services.embedded_broker_watch"):
        rss, _ = watch.check()
        watch.check()  # still below the next (doubled) limit: no second warning
    assert rss is not None and rss > 1
    assert watch.warnings == 1 and watch.warn_mb > rss
    assert "embedded_broker_memory" in caplog.text and "streamrec down" in caplog.text


def test_warns_when_the_broker_keeps_a_core_busy(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    watch = EmbeddedBrokerWatch(stand_in(tmp_path, broker_memory_warn_mb=0))
    assert watch.check()[1] is None  # the first look has nothing to compare with
    assert watch_module.cpu_seconds(os.getpid()) is not None  # it reads /proc
    # 0.6 s of the broker's CPU in 1 s of wall time (a clock of its own: a loaded machine
    # stretches a real busy loop's wall time, not its CPU time).
    last_wall, last_cpu = watch._last_cpu or (0.0, 0.0)
    monkeypatch.setattr(watch_module, "cpu_seconds", lambda pid: last_cpu + 0.6)
    monkeypatch.setattr(watch_module.time, "monotonic", lambda: last_wall + 1.0)
    with caplog.at_level(logging.WARNING, "streams.services.embedded_broker_watch"):
        _, share = watch.check()
    assert share is not None and share == pytest.approx(0.6)
    assert watch.warnings == 1 and "embedded_broker_load" in caplog.text


def test_another_broker_is_not_watched(tmp_path: Path) -> None:
    broker_recorded_as(tmp_path, os.getpid(), 41234)
    elsewhere = Settings(kafka_bootstrap_servers="kafka:9092", state_dir=tmp_path)
    assert EmbeddedServices(elsewhere).running_broker_pid() is None
    assert EmbeddedBrokerWatch(elsewhere).check() == (None, None)
    started = time.monotonic()
    EmbeddedBrokerWatch(elsewhere, check_every_s=0.01).start().stop()
    assert time.monotonic() - started < 1
