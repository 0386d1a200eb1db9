"""Pure pieces of ``streamrec retrain``: reading a file, and how partitions are cut into
tasks."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from online_model.errors import InputError
from streams.retrain import job
from streams.retrain.kafka_ranges import split_partition
from streams.time_range import TimeRange


def test_a_file_with_a_bad_row_is_refused_as_produce_refuses_it(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text("user_id,page_id,ts_ms\nu1,p1,5\nu2,p2,notatime\nu3,p3,7\n")
    says = rf"^{re.escape(str(path))} line 3: ts_ms 'notatime' is not a time"
    with pytest.raises(InputError, match=says):
        job.read_file(str(path), TimeRange())
    # --skip-bad: counted by reason, the rest read.
    read = job.read_file(str(path), TimeRange(), skip_bad=True)
    assert read.bad_by_reason == {"bad_row": 1} and read.n_events == 2


def test_ranges_cover_the_partition_once_and_the_last_one_is_open() -> None:
    ranges = split_partition("t", 2, 10, 1_000, 300)
    # 990 records in ranges of at most 300: four equal ones, not 300, 300, 300 and 90.
    assert [(r.start, r.end) for r in ranges] == [(10, 258), (258, 506), (506, 754), (754, None)]
    assert {r.partition for r in ranges} == {2}
    # An empty (or watermark-less) partition still gets one open range: the watermark may lag.
    assert [(r.start, r.end) for r in split_partition("t", 0, 0, 0, 300)] == [(0, None)]


def test_a_from_in_the_future_with_an_open_to_is_refused_as_a_date() -> None:
    from online_model.errors import ConfigurationError
    from streams.cli.retrain import _up_to_now
    from streams.retrain.run import RetrainSpec

    spec = RetrainSpec("covisit", {}, TimeRange(4_102_444_800_000, None))  # 2100-01-01
    with pytest.raises(ConfigurationError, match=r"^--from 2100-01-01T00:00:00Z is not before now"):
        _up_to_now(spec)
