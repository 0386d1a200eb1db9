"""A trainer on the embedded broker warns before the broker's memory hurts."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path

import pytest

from streams.ops.broker_memory import BrokerMemoryWatch
from streams.ops.embedded import EmbeddedServices
from streams.settings import Settings


def broker_recorded_as(state_dir: Path, pid: int, port: int) -> None:
    """A services.json as `streamrec up` writes it (this test process stands in)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    entry = {"pid": pid, "port": port, "binary": sys.executable, "log": "", "started_at": 0.0}
    (state_dir / "services.json").write_text(json.dumps({"kafka": entry}))


def test_warns_past_the_limit_then_at_each_doubling(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broker_recorded_as(tmp_path, os.getpid(), 41234)
    s = Settings(
        kafka_bootstrap_servers="127.0.0.1:41234", state_dir=tmp_path, broker_memory_warn_mb=1
    )
    watch = BrokerMemoryWatch(s)
    with caplog.at_level(logging.WARNING, "streams.ops.broker_memory"):
        rss = watch.check()
        watch.check()  # still below the next (doubled) limit: no second warning
    assert rss is not None and rss > 1
    assert watch.warnings == 1 and watch.warn_mb > rss
    assert "embedded_broker_memory" in caplog.text and "streamrec down" in caplog.text


def test_another_broker_is_not_watched(tmp_path: Path) -> None:
    broker_recorded_as(tmp_path, os.getpid(), 41234)
    elsewhere = Settings(kafka_bootstrap_servers="kafka:9092", state_dir=tmp_path)
    assert EmbeddedServices(elsewhere).running_broker_pid() is None
    assert BrokerMemoryWatch(elsewhere).check() is None
    started = time.monotonic()
    BrokerMemoryWatch(elsewhere, check_every_s=0.01).start().stop()
    assert time.monotonic() - started < 1
