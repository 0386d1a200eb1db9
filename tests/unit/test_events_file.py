"""What a user's page-view file must be, and how its problems are reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from online_model.data.events_file import read_events
from online_model.errors import InputError
from streams.scorer.batch_score import check_distinct, read_users


def write(tmp_path: Path, name: str, data: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


@pytest.mark.parametrize(
    ("name", "text"),
    [("empty.csv", ""), ("header.csv", "user_id,page_id,ts_ms\n"), ("blank.jsonl", "\n\n")],
)
def test_a_file_without_page_views_is_an_error(tmp_path: Path, name: str, text: str) -> None:
    with pytest.raises(InputError, match="holds no page views"):
        read_events(write(tmp_path, name, text))


def test_every_row_skipped_is_an_error_that_counts_them(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.csv", "user_id,page_id,ts_ms\nu,p,x\nu,p,y\n")
    with pytest.raises(InputError, match=r"holds no page views \(2 bad rows skipped\)"):
        read_events(path, skip_bad=True)


@pytest.mark.parametrize("name", ["bom.csv", "bom.jsonl"])
def test_a_utf8_byte_order_mark_is_not_part_of_the_header(tmp_path: Path, name: str) -> None:
    body = (
        "user_id,page_id,ts_ms\nu1,p1,5\n"
        if name.endswith(".csv")
        else '{"user_id": "u1", "page_id": "p1", "ts_ms": 5}\n'
    )
    log = read_events(write(tmp_path, name, b"\xef\xbb\xbf" + body.encode()))
    assert [(e.user_id, e.page_id, e.ts_ms) for e in log] == [("u1", "p1", 5)]


@pytest.mark.parametrize("ts", [str(2**63), "-" + str(2**63 + 1), "1e30"])
def test_a_timestamp_outside_int64_names_its_line(tmp_path: Path, ts: str) -> None:
    path = write(tmp_path, "big.csv", f"user_id,page_id,ts_ms\nu1,p1,5\nu2,p2,{ts}\n")
    with pytest.raises(InputError, match=r"line 3: ts_ms .* signed 64-bit"):
        read_events(path)


@pytest.mark.parametrize("name", ["events.csv", "events.jsonl"])
def test_a_timestamp_that_is_not_one_names_the_file_and_what_to_give(
    tmp_path: Path, name: str
) -> None:
    body = (
        "user_id,page_id,ts_ms\nu1,p1,5\nu2,p2,notatime\n"
        if name.endswith(".csv")
        else '{"user_id": "u1", "page_id": "p1", "ts_ms": 5}\n'
        '{"user_id": "u2", "page_id": "p2", "ts_ms": "notatime"}\n'
    )
    path = write(tmp_path, name, body)
    line = 3 if name.endswith(".csv") else 2
    with pytest.raises(InputError) as refused:
        read_events(path)
    assert str(refused.value) == (
        f"{path} line {line}: ts_ms 'notatime' is not a time (give epoch milliseconds, "
        "e.g. 1733493600000 for 2024-12-06T14:00:00Z)"
    )
    # Skipped, the first problem is kept for the report.
    log = read_events(path, skip_bad=True)
    assert log.n_bad == 1 and log.first_bad is not None and "is not a time" in log.first_bad


def test_a_header_without_ts_ms_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "views.csv", "user_id,page_id\nu1,p1\n")
    with pytest.raises(InputError, match=r"views\.csv line 1: header lacks ts_ms"):
        read_events(path)


def test_users_file_must_name_users(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="holds no user ids"):
        read_users(write(tmp_path, "users.txt", "\n\n"))
    assert read_users(write(tmp_path, "bom.csv", b"\xef\xbb\xbfuser_id\nu1\n")) == ["u1"]


def test_batch_output_may_not_be_its_input(tmp_path: Path) -> None:
    users = write(tmp_path, "users.txt", "u1\n")
    with pytest.raises(InputError, match="is the --users file"):
        check_distinct(users, tmp_path / "." / "users.txt")
    check_distinct(users, tmp_path / "recs.jsonl")  # another file is fine
