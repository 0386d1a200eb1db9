"""Catalog records as they come off the topic and out of files: what is applied, what is
refused, and how a bad file is reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from online_model.catalog import Catalog
from online_model.errors import InputError
from streams.catalog.follower import CatalogFollower
from streams.catalog.pages_file import read_pages
from streams.io.codec import PAGE, AvroCodec
from streams.records import LogRecord
from streams.settings import Settings

CODEC = AvroCodec.bundled(PAGE)


def record(key: bytes | None, value: bytes | None, offset: int = 0) -> LogRecord:
    return LogRecord("pages", 0, offset, value, key=key)


def test_the_follower_applies_pages_and_tombstones_and_refuses_the_rest() -> None:
    follower = CatalogFollower(Settings(), Catalog())
    follower.apply(record(b"p1", CODEC.encode({"page_id": "p1", "available": False})))
    follower.apply(record(b"p2", CODEC.encode({"page_id": "p2"})))
    follower.apply(record(b"p2", None))  # tombstone
    follower.apply(record(b"p3", b"not avro"))
    follower.apply(record(b"other", CODEC.encode({"page_id": "p4"})))  # key is not page_id
    follower.apply(record(None, None))  # a tombstone naming no page
    assert (follower.applied, follower.refused) == (3, 3)
    catalog = follower.catalog
    assert not catalog.eligible("p1", 0) and not catalog.eligible("p2", 0)
    assert "p4" not in catalog and "other" not in catalog


def test_a_pages_file_in_both_formats(tmp_path: Path) -> None:
    csv_file = tmp_path / "pages.csv"
    csv_file.write_text("page_id,available,published_at,section\np1,no,1700000000000,world\n")
    jsonl_file = tmp_path / "pages.jsonl"
    jsonl_file.write_text(
        '{"page_id": "p1", "available": false, "published_at": "2023-11-14T22:13:20Z",'
        ' "attributes": {"section": "world"}}\n'
    )
    assert read_pages(csv_file) == read_pages(jsonl_file)
    [page] = read_pages(csv_file)
    assert page["published_at"] == 1_700_000_000_000 and page["attributes"] == {"section": "world"}
    assert CODEC.decode(CODEC.encode(page)) == page


@pytest.mark.parametrize(
    ("text", "name", "message"),
    [
        ("page_id,available\np1,perhaps\n", "a.csv", "line 2: available must be true or false"),
        ("title\nx\n", "b.csv", "header lacks page_id"),
        ("page_id\n\n", "c.csv", "holds no pages"),
        ('{"page_id": ""}\n', "d.jsonl", "line 1: page_id must be a non-empty string"),
        ('{"page_id": "p", "categories": [1]}\n', "e.jsonl", "categories must be"),
        ('{"page_id": "p", "attributes": {"a": 1}}\n', "f.jsonl", "attributes must be"),
        ("{oops\n", "g.jsonl", "line 1: invalid JSON"),
    ],
)
def test_bad_pages_files_name_the_line_and_the_problem(
    tmp_path: Path, text: str, name: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        read_pages(path)
