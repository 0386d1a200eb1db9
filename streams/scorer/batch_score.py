"""Batch scoring: recommendations for a file of users, as the REST view would answer them.

Each user's list comes from :meth:`streams.scorer.core.ScoringCore.recommend` — the call the
REST view makes — with the user's history read from Redis by
:class:`streams.state.history.HistoryStore` (same keys, same length), so the pages a user has
seen are excluded exactly as online. Histories are read in pipelined chunks.

The model is the store's CURRENT snapshot. Without one, a scorer serves a popularity it
learns from the live stream since it started, which a batch cannot see; the batch instead
learns the same decayed popularity from the histories of the users in the file (a first
pass over Redis), and says so. Unknown users (no history) get the model's cold-start list.
"""

from __future__ import annotations

import csv
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import IO, Any, Protocol

import fastavro

from online_model.catalog import Rules
from online_model.errors import InputError
from online_model.models.popularity import DecayedPopularity
from streams.errors import ServiceError
from streams.scorer.core import ScoringCore
from streams.scorer.model_holder import Served
from streams.state.history import HistoryStore

log = logging.getLogger(__name__)

FORMATS = ("jsonl", "csv", "avro")
SCHEMA_FILE = "batch_recommendation.avsc"


@dataclass(frozen=True)
class BatchRow:
    """One user's list."""

    user_id: str
    items: list[tuple[str, float]]
    model_name: str
    model_version: int
    history_length: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "items": [{"page_id": page, "score": score} for page, score in self.items],
            "model_name": self.model_name,
            "model_version": self.model_version,
            "history_length": self.history_length,
        }


def read_users(path: str | Path) -> list[str]:
    """User ids from ``path``: one per line, or a CSV whose header has a ``user_id``
    column. Blank lines are skipped; duplicates keep their first place."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            first = fh.readline()
            fh.seek(0)
            header = [c.strip() for c in next(csv.reader([first]), [])]
            if "user_id" in header:
                reader = csv.DictReader(fh)
                users = [(row.get("user_id") or "").strip() for row in reader]
            elif len(header) > 1:
                raise InputError(f"{path}: a CSV of users needs a user_id column, got {header}")
            else:
                users = [line.strip() for line in fh]
    except OSError as exc:
        raise InputError(f"cannot read users file {path}: {exc}") from exc
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path} is not a UTF-8 text or CSV file: {exc}") from exc
    unique = list(dict.fromkeys(u for u in users if u))
    if not unique:
        raise InputError(f"{path} holds no user ids")
    return unique


def check_distinct(input_path: str | Path, output_path: str | Path) -> None:
    """Refuse to write the output over the input (it is truncated before it is read)."""
    output = Path(output_path)
    if output.exists() and output.resolve() == Path(input_path).resolve():
        raise InputError(f"--output {output_path} is the --users file; choose another file")


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _read(history: HistoryStore, users: list[str]) -> dict[str, list[str]]:
    state = history.read(users)
    if state.degraded:
        # Online, a Redis outage degrades to "no history"; a batch file written that way
        # would look valid and be wrong for everyone, so stop instead.
        raise ServiceError("Redis is unavailable: cannot read user histories")
    return state.histories


def popularity_from_histories(
    history: HistoryStore, users: list[str], chunk_size: int
) -> DecayedPopularity:
    """The cold-start model when no snapshot exists: popularity over the users' histories."""
    model = DecayedPopularity()
    for chunk in _chunks(users, chunk_size):
        for user, pages in _read(history, chunk).items():
            for page in pages:
                model.learn_one(user, page)
    return model


def score_users(
    core: ScoringCore,
    served: Served,
    history: HistoryStore,
    users: list[str],
    k: int,
    chunk_size: int = 500,
    on_chunk: Callable[[int], None] | None = None,
    rules: Rules | None = None,
) -> Iterator[BatchRow]:
    """A :class:`BatchRow` per user, in file order, with REST's exact code path (and the
    same ``rules`` for every user, as REST's ``category`` and ``exclude``)."""
    rules = rules or Rules()
    for chunk in _chunks(users, chunk_size):
        histories = _read(history, chunk)
        for user in chunk:
            past = histories.get(user, [])
            items = core.recommend(served, user, past, k, rules=rules)
            yield BatchRow(user, items, core.model_name, served.version, len(past))
        if on_chunk is not None:
            on_chunk(len(chunk))


# -- output ---------------------------------------------------------------------------------
class RowWriter(Protocol):
    def write(self, row: BatchRow) -> None: ...

    def close(self) -> None: ...


class JsonlWriter:
    """One JSON object per user: user_id, items [{page_id, score}], model_name/version."""

    def __init__(self, fh: IO[str]) -> None:
        self._fh = fh

    def write(self, row: BatchRow) -> None:
        self._fh.write(json.dumps(row.to_dict(), separators=(",", ":")) + "\n")

    def close(self) -> None:
        self._fh.close()


class CsvWriter:
    """One line per (user, rank); a user with an empty list gets one line with no page."""

    COLUMNS = ("user_id", "rank", "page_id", "score", "model_version")

    def __init__(self, fh: IO[str]) -> None:
        self._fh = fh
        self._csv = csv.writer(fh)
        self._csv.writerow(self.COLUMNS)

    def write(self, row: BatchRow) -> None:
        if not row.items:
            self._csv.writerow([row.user_id, "", "", "", row.model_version])
        for rank, (page, score) in enumerate(row.items, 1):
            self._csv.writerow([row.user_id, rank, page, repr(score), row.model_version])

    def close(self) -> None:
        self._fh.close()


def batch_schema() -> Any:
    """The parsed ``schemas/batch_recommendation.avsc``."""
    text = resources.files("schemas").joinpath(SCHEMA_FILE).read_text()
    return fastavro.parse_schema(json.loads(text))


class AvroWriter:
    """An Avro object container file of ``streamrec.BatchRecommendation`` records."""

    def __init__(self, fh: IO[bytes]) -> None:
        self._fh = fh
        self._writer = fastavro.write.Writer(fh, batch_schema(), codec="deflate")
        self._now = int(time.time() * 1000)

    def write(self, row: BatchRow) -> None:
        self._writer.write({**row.to_dict(), "produced_at": self._now})

    def close(self) -> None:
        self._writer.flush()
        self._fh.close()


def open_writer(path: str | Path, fmt: str) -> RowWriter:
    """A writer of ``fmt`` (jsonl, csv, avro) on ``path``."""
    try:
        if fmt == "avro":
            return AvroWriter(open(path, "wb"))  # closed by close()
        fh = open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc}") from exc
    return CsvWriter(fh) if fmt == "csv" else JsonlWriter(fh)


def format_for(path: str | Path, fmt: str | None) -> str:
    """``fmt`` if given, else from the file name (``.csv``, ``.avro``; anything else jsonl)."""
    if fmt:
        if fmt not in FORMATS:
            raise InputError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
        return fmt
    suffix = Path(path).suffix.lower().lstrip(".")
    return suffix if suffix in ("csv", "avro") else "jsonl"


def write_rows(rows: Iterable[BatchRow], writer: RowWriter) -> int:
    n = 0
    try:
        for row in rows:
            writer.write(row)
            n += 1
    finally:
        writer.close()
    return n
