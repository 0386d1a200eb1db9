"""Pure pieces of ``streamrec retrain``: durations and how partitions are cut into tasks."""

from __future__ import annotations

import pytest

from online_model.errors import ConfigurationError
from streams.cli.retrain import parse_duration
from streams.retrain.kafka_ranges import split_partition


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90.0), ("90s", 90.0), ("15m", 900.0), ("1.5h", 5400.0), ("1d", 86400.0)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["soon", "0", "-5m", "5w"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ConfigurationError, match="not a positive duration"):
        parse_duration(text)


def test_ranges_cover_the_partition_once_and_the_last_one_is_open() -> None:
    ranges = split_partition("t", 2, 10, 1_000, 300)
    # 990 records in ranges of at most 300: four equal ones, not 300, 300, 300 and 90.
    assert [(r.start, r.end) for r in ranges] == [(10, 258), (258, 506), (506, 754), (754, None)]
    assert {r.partition for r in ranges} == {2}
    # An empty (or watermark-less) partition still gets one open range: the watermark may lag.
    assert [(r.start, r.end) for r in split_partition("t", 0, 0, 0, 300)] == [(0, None)]
