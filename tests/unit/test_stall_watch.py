"""The stall watch: behind the log and receiving nothing, for long enough, is a stall."""

from __future__ import annotations

import pytest

from streams.cli.models import status_line
from streams.io.stall_watch import StallWatch
from streams.state.trainer_status import state_of


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_nothing_received_while_behind_is_a_stall_once_the_timeout_passed(clock: Clock) -> None:
    watch = StallWatch("trainer", timeout_s=30, clock=clock)
    clock.now += 29
    assert not watch.due()
    clock.now += 1
    assert watch.due()
    assert watch.check(lambda: {("pv", 0): 12, ("pv", 1): 0})
    assert watch.stalled and watch.stalls == 1 and watch.behind == {("pv", 0): 12}
    assert watch.as_dict() == {"stalled": True, "stalls": 1, "behind": 12, "idle_s": 30.0}
    assert not watch.due()  # the check restarts the clock: one check per timeout
    watch.received(5)
    assert not watch.stalled and watch.stalls == 1


def test_caught_up_or_broker_away_is_no_stall(clock: Clock) -> None:
    watch = StallWatch("scorer", timeout_s=5, clock=clock)
    clock.now += 6
    assert not watch.check(lambda: {("pv", 0): 0})

    def broker_away() -> dict[tuple[str, int], int]:
        raise TimeoutError("no answer")

    clock.now += 6
    assert not watch.check(broker_away)
    assert not watch.stalled and watch.stalls == 0


def test_records_keep_a_consumer_from_being_called_stalled(clock: Clock) -> None:
    watch = StallWatch("catalog", timeout_s=5, clock=clock)
    for _ in range(10):
        clock.now += 4
        watch.received(1)
        assert not watch.due()


def test_an_operator_reads_a_stalled_trainer_in_one_line() -> None:
    record = {
        "model_name": "default",
        "pid": 42,
        "host": "h",
        "events_learned": 112_973,
        "last_version": 267,
        "updated_at": 0.0,
        "fetch_wait_ms": 100,
        "stalls": 1,
        "stalled": True,
        "behind": 40_000,
        "idle_s": 31.0,
    }
    assert state_of(record) == "stalled"
    line = status_line(record)
    assert line.startswith("trainer of default: stalled; pid 42 on h, 112973 events learned")
    assert "STALLED: 40000 records behind, nothing received for 31 s" in line
