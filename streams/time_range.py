"""Points and ranges of time as people type them: ``--from``/``--to`` of the page-view log.

A time is epoch milliseconds or ISO-8601 (no zone = UTC); a :class:`TimeRange` is the
half-open ``[start, end)`` that replay, retrain and the Kafka range reader
(:mod:`streams.io.range_reader`) read, and a catalog file's times are read the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from streams.errors import ConfigurationError


@dataclass(frozen=True)
class TimeRange:
    """``[start_ms, end_ms)`` in epoch milliseconds; None is an open end."""

    start_ms: int | None = None
    end_ms: int | None = None

    def __post_init__(self) -> None:
        if self.start_ms is not None and self.end_ms is not None and self.end_ms <= self.start_ms:
            raise ConfigurationError(f"--to ({self.end_ms}) must be after --from ({self.start_ms})")

    def __contains__(self, ts_ms: object) -> bool:
        if not isinstance(ts_ms, int):
            return False
        if self.start_ms is not None and ts_ms < self.start_ms:
            return False
        return self.end_ms is None or ts_ms < self.end_ms

    def passed(self, ts_ms: int, lateness_ms: int = 0) -> bool:
        """Whether ``ts_ms`` is at or after the end plus ``lateness_ms`` (so a partition
        whose timestamps are ordered up to that lateness can stop there)."""
        return self.end_ms is not None and ts_ms >= self.end_ms + lateness_ms

    def to_dict(self) -> dict[str, Any]:
        return {"from_ms": self.start_ms, "to_ms": self.end_ms}


def parse_time(text: str | None) -> int | None:
    """Epoch milliseconds from ``"1700000000000"`` or ISO-8601 (no zone = UTC); None/"" = open.

    >>> parse_time("1700000000000")
    1700000000000
    >>> parse_time("2023-11-14T22:13:20Z")
    1700000000000
    >>> parse_time("2023-11-15T00:13:20+02:00")
    1700000000000
    >>> parse_time("")
    """
    if text is None or not text.strip():
        return None
    raw = text.strip()
    if raw.lstrip("-").isdigit():
        return int(raw)
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise ConfigurationError(
            f"time {text!r} is neither epoch milliseconds nor ISO-8601 (e.g. 2024-05-01T12:00:00Z)"
        ) from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return round(parsed.timestamp() * 1000)


def parse_range(start: str | None, end: str | None) -> TimeRange:
    """``--from``/``--to`` as typed into a :class:`TimeRange`; a reversed or empty range is
    refused naming both as typed (not as the epoch milliseconds they became).

    >>> parse_range("2024-05-01", None).start_ms
    1714521600000
    >>> parse_range("2024-06-01", "2024-05-01")
    Traceback (most recent call last):
    ...
    online_model.errors.ConfigurationError: --to 2024-05-01 must be after --from 2024-06-01
    """
    start_ms, end_ms = parse_time(start), parse_time(end)
    if start_ms is not None and end_ms is not None and end_ms <= start_ms:
        assert start is not None and end is not None
        raise ConfigurationError(f"--to {end.strip()} must be after --from {start.strip()}")
    return TimeRange(start_ms, end_ms)
