"""Replay logic with a fake log: range, order, bad records, gate, determinism."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from online_model.errors import ConfigurationError, StreamrecError
from online_model.registry import make_model
from streams.records import LogRecord
from streams.replay.rebuild import ReplayEvent, build_snapshot, collect, judge, train
from streams.time_range import TimeRange, parse_range


class Bad(StreamrecError):
    pass


def decode(value: bytes | None) -> dict[str, Any]:
    if not value or not value.startswith(b"{"):
        raise Bad("not json")
    return dict(json.loads(value))


def record(
    partition: int, offset: int, record_ts: int, user: str, page: str, event_ts: int | None = None
) -> LogRecord:
    body = {"user_id": user, "page_id": page, "ts": record_ts if event_ts is None else event_ts}
    return LogRecord("pv", partition, offset, json.dumps(body).encode(), record_ts)


def test_collect_keeps_the_range_and_orders_by_event_time_then_partition_offset() -> None:
    records = [
        record(1, 7, 150, "b", "x"),
        record(0, 3, 150, "a", "y"),
        record(0, 1, 100, "a", "z"),  # start is inclusive
        record(1, 2, 99, "c", "early"),
        record(0, 9, 200, "a", "late"),  # end is exclusive
        record(1, 5, 120, "c", "w", event_ts=90),  # ordered by its own ts
        LogRecord("pv", 2, 4, b"garbage", 130),
    ]
    log = collect(records, decode, TimeRange(100, 200), "pv", [2, 0, 1])
    assert [(e.page, e.partition, e.offset) for e in log.events] == [
        ("w", 1, 5),
        ("z", 0, 1),
        ("y", 0, 3),
        ("x", 1, 7),
    ]
    assert log.n_read == 5 and log.n_bad == 1
    assert log.offset_ranges == {0: [1, 3], 1: [5, 7], 2: [4, 4]}
    assert log.partitions == [0, 1, 2]
    snap = build_snapshot(make_model("popularity"), log, {"hit@10": 0.5, "model": "x"}, "m", {})
    assert snap.meta.origin == "replay"
    assert snap.meta.offsets == {"pv": {0: 4, 1: 8, 2: 5}}
    assert snap.meta.extra["replay"]["time_range"] == {"from_ms": 100, "to_ms": 200}
    assert snap.meta.metrics == {"hit@10": 0.5}


def test_open_ends_and_an_empty_range() -> None:
    assert 5 in TimeRange(None, 10) and 10 not in TimeRange(None, 10)
    assert 10**15 in TimeRange(3, None) and 2 not in TimeRange(3, None)
    assert TimeRange(None, 10).passed(10) and not TimeRange(None, 10).passed(10, lateness_ms=5)
    with pytest.raises(ConfigurationError, match="after --from"):
        TimeRange(10, 10)


@pytest.mark.parametrize("command", ["replay", "retrain"])
def test_a_reversed_range_is_refused_as_typed(command: str) -> None:
    from click.testing import CliRunner

    from streams.cli import main

    args = ["--from", "2024-06-01T00:00:00Z", "--to", "2024-05-01"]
    result = CliRunner().invoke(main, [command, *args], env={"STREAMREC_INSECURE_DEV": "1"})
    assert result.exit_code == 2
    assert "error: --to 2024-05-01 must be after --from 2024-06-01T00:00:00Z" in result.output
    assert parse_range("1700000000000", "2024-05-01") == TimeRange(1700000000000, 1714521600000)
    with pytest.raises(ConfigurationError, match=r"^--to 1000 must be after --from 1000$"):
        parse_range(" 1000", "1000 ")


def walk(n: int) -> list[ReplayEvent]:
    return [ReplayEvent(i, 0, i, f"u{i % 9}", f"p{(i % 9 * 7 + i // 9) % 25}") for i in range(n)]


def test_gate_compares_a_fresh_clone_of_the_current_model() -> None:
    events = walk(500)
    candidate = train(make_model("popularity"), events)
    # The current covisit snapshot already learned these very events (and more):
    # the gate must not grade it on answers it has seen, so only its spec counts.
    seasoned = make_model("covisit")
    train(seasoned, walk(3000))
    fresh = make_model("covisit")
    v_seasoned = judge("hit@10", candidate, seasoned, 7, events, 10, 50)
    v_fresh = judge("hit@10", candidate, fresh, 7, events, 10, 50)
    assert v_seasoned.current == v_fresh.current
    assert not v_seasoned.passed and v_seasoned.candidate < v_seasoned.current  # type: ignore[operator]
    assert seasoned.n_events_learned == 3000  # the served model is not touched
    assert judge("hit@10", candidate, None, None, events, 10, 50).passed
    with pytest.raises(ConfigurationError, match="not a metric"):
        judge("ndcg@10", candidate, fresh, 7, events, 10, 50)


_HASH_SCRIPT = """
import hashlib, pickle
from online_model.registry import make_model
from streams.replay.rebuild import ReplayEvent, train
events = [ReplayEvent(i, 0, i, f"u{i % 13}", f"p{(i * 7) % 37}") for i in range(1500)]
for name in ("covisit", "popularity", "mf", "blend"):
    model = make_model(name, {})
    train(model, events)
    print(name, hashlib.sha256(pickle.dumps(model, protocol=5)).hexdigest())
"""


def test_same_events_give_the_same_content_hash_across_processes() -> None:
    """Replays run in separate processes, with different string-hash seeds."""
    outputs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", _HASH_SCRIPT],
            env=env,
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        )
        outputs.append(done.stdout)
    assert outputs[0] == outputs[1] and len(outputs[0].splitlines()) == 4
