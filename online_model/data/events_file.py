"""Read page-view logs (CSV or JSONL, plain or gzipped) into time-ordered events.

A name ending in ``.gz`` is decompressed while it is read (never whole in memory), its
format told by the name before ``.gz`` (``views.csv.gz``, ``views.jsonl.gz``).

Both formats carry ``user_id``, ``page_id``, ``ts_ms`` (epoch milliseconds) and an
optional ``session_id``. ``ts_ms`` is a number of milliseconds since 1970-01-01 UTC
(``1733493600000``; a decimal or exponent form such as ``1.7334936e12`` is truncated to
whole milliseconds). Rows may come unsorted; they are stable-sorted by ``ts_ms`` so ties
keep file order. A malformed row raises :class:`~online_model.errors.InputError` naming
the file and its line, or is skipped and counted with ``skip_bad=True``.
"""

from __future__ import annotations

import csv
import gzip
import json
import logging
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, NamedTuple

from online_model.errors import InputError

logger = logging.getLogger(__name__)

REQUIRED_FIELDS = ("user_id", "page_id", "ts_ms")

#: Timestamps are Avro longs (signed 64-bit) downstream.
_TS_MIN, _TS_MAX = -(2**63), 2**63 - 1
#: What a ``ts_ms`` that is not one should have been.
TS_HINT = "give epoch milliseconds, e.g. 1733493600000 for 2024-12-06T14:00:00Z"


class PageView(NamedTuple):
    """One page view: who, what, when (epoch ms) and, optionally, in which session."""

    user_id: str
    page_id: str
    ts_ms: int
    session_id: str | None = None


@dataclass
class EventLog:
    """Events of a file in time order, and what was skipped on the way."""

    events: list[PageView]
    n_bad: int = 0
    bad_lines: list[int] = field(default_factory=list)  # first 100 skipped line numbers
    first_bad: str | None = None  # why the first skipped row was bad

    def __iter__(self) -> Iterator[PageView]:
        return iter(self.events)

    def __len__(self) -> int:
        return len(self.events)


def _parse_ts(value: object) -> int:
    """Epoch milliseconds; ``ValueError`` ending a sentence that starts with the value."""
    ts = _ts_number(value)
    if not _TS_MIN <= ts <= _TS_MAX:
        raise ValueError(f"does not fit in a signed 64-bit integer ({TS_HINT})")
    return ts


def _ts_number(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError(f"is a boolean, not a time ({TS_HINT})")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"is not a finite time ({TS_HINT})")
        return int(value)
    text = str(value).strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        f = float(text)  # accept "1.7e12"
    except ValueError:
        raise ValueError(f"is not a time ({TS_HINT})") from None
    if f != f or f in (float("inf"), float("-inf")):
        raise ValueError(f"is not a finite time ({TS_HINT})")
    return int(f)


def _row_to_view(row: dict, line: int) -> PageView:
    missing = [f for f in REQUIRED_FIELDS if row.get(f) in (None, "")]
    if missing:
        raise InputError(f"line {line}: missing {', '.join(missing)}")
    try:
        ts = _parse_ts(row["ts_ms"])
    except (TypeError, ValueError) as exc:
        raise InputError(f"line {line}: ts_ms {row['ts_ms']!r} {exc}") from exc
    session = row.get("session_id")
    return PageView(
        str(row["user_id"]).strip(),
        str(row["page_id"]).strip(),
        ts,
        None if session in (None, "") else str(session),
    )


def _open_text(path: str | os.PathLike[str], newline: str | None = None) -> IO[str]:
    """``path`` opened for reading text, through gzip when its name ends in ``.gz``."""
    # utf-8-sig: a byte-order mark (spreadsheet exports write one) is not part of the header
    if str(path).lower().endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8-sig", newline=newline)
    return open(path, encoding="utf-8-sig", newline=newline)


def _csv_rows(
    path: str | os.PathLike[str], required: tuple[str, ...] = REQUIRED_FIELDS
) -> Iterator[tuple[int, dict | None, str | None]]:
    with _open_text(path, newline="") as fh:
        reader = csv.reader(fh)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            return
        absent = [f for f in required if f not in header]
        if absent:
            raise InputError(f"line 1: header lacks {', '.join(absent)} (got {header})")
        n = len(header)
        for values in reader:
            line = reader.line_num
            if not values or (len(values) == 1 and not values[0].strip()):
                continue  # blank line
            if len(values) != n:
                yield line, None, f"expected {n} fields, got {len(values)}"
                continue
            yield line, dict(zip(header, values, strict=True)), None


def _jsonl_rows(path: str | os.PathLike[str]) -> Iterator[tuple[int, dict | None, str | None]]:
    with _open_text(path) as fh:
        for line, text in enumerate(fh, 1):
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as exc:
                yield line, None, f"invalid JSON ({exc.msg})"
                continue
            except RecursionError:
                yield line, None, "invalid JSON (nested too deeply)"
                continue
            if not isinstance(row, dict):
                yield line, None, "not a JSON object"
                continue
            yield line, row, None


def file_rows(
    path: str | os.PathLike[str], required: tuple[str, ...], fmt: str | None = None
) -> Iterator[tuple[int, dict | None, str | None]]:
    """``(line, row, problem)`` for each row of a CSV (with a header naming ``required``)
    or JSONL file, either gzipped (``.gz``): the reading every events-like file shares
    (page views, the catalog)."""
    if fmt is None:
        lower = str(path).lower().removesuffix(".gz")
        fmt = "jsonl" if lower.endswith((".jsonl", ".json", ".ndjson")) else "csv"
    return _jsonl_rows(path) if fmt == "jsonl" else _csv_rows(path, required)


def _located(
    path: str | os.PathLike[str], rows: Iterator[tuple[int, dict | None, str | None]]
) -> Iterator[tuple[int, dict | None, str | None]]:
    """``rows``, with the file named in an error of its own (a header without ts_ms)."""
    try:
        yield from rows
    except InputError as exc:
        raise InputError(f"{path} {exc}") from exc


def read_events(
    path: str | os.PathLike[str], *, skip_bad: bool = False, fmt: str | None = None
) -> EventLog:
    """Read a CSV or JSONL page-view file into an :class:`EventLog` sorted by ``ts_ms``.

    Parameters
    ----------
    path
        File to read. ``.jsonl``/``.json``/``.ndjson`` are read as JSON lines, anything
        else as CSV with a header row; a further ``.gz`` (``views.csv.gz``) is gunzipped
        on the fly.
    skip_bad
        Skip and count malformed rows instead of raising.
    fmt
        Force ``"csv"`` or ``"jsonl"``.

    Raises
    ------
    InputError
        On the first malformed row (``events.csv line 3: ...``) unless ``skip_bad``; on a missing
        file, a CSV header without the required columns, or a file with no page view in
        it (empty, a header only, or every row skipped): an empty input is a mistake.
    """
    rows = _located(path, file_rows(path, REQUIRED_FIELDS, fmt))
    events: list[PageView] = []
    log = EventLog(events)
    try:
        for line, row, problem in rows:
            try:
                if problem is not None:
                    raise InputError(f"line {line}: {problem}")
                events.append(_row_to_view(row, line))  # type: ignore[arg-type]
            except InputError as exc:
                if not skip_bad:
                    raise InputError(f"{path} {exc}") from exc
                log.n_bad += 1
                if len(log.bad_lines) < 100:
                    log.bad_lines.append(line)
                if log.first_bad is None:
                    log.first_bad = str(exc)
    except (OSError, EOFError, zlib.error) as exc:  # a truncated or corrupt .gz
        raise InputError(f"cannot read {path}: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not UTF-8 text: {exc}") from exc
    if not events:
        skipped = f" ({log.n_bad} bad rows skipped)" if log.n_bad else ""
        raise InputError(f"{path} holds no page views{skipped}")
    events.sort(key=lambda e: e.ts_ms)  # list.sort is stable: ties keep file order
    if log.n_bad:
        logger.warning(
            "skipped bad rows path=%s n_bad=%d lines=%s first: %s",
            path,
            log.n_bad,
            log.bad_lines[:5],
            log.first_bad,
        )
    return log
