"""What an operator does to a model: list its versions, promote, roll back, follow.

``streamrec models list|promote|rollback|follow`` and the scorer's ``/models`` endpoints
both call these, so both list, check, move ``current`` and log the same way. Each returns where
``current`` points afterwards; the store does the work in one Lua script and publishes
the hint running scorers swap on.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from online_model.errors import SnapshotError
from online_model.snapshot import SnapshotMeta
from streams.experiment import results
from streams.state.connection import redis_errors
from streams.state.snapshot_store import SnapshotStore

log = logging.getLogger(__name__)


def _when(ts: float) -> str:
    if not ts:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _when_ms(ms: int | None) -> str:
    return "…" if ms is None else _when(ms / 1000)


def _spans(spans: dict[str, list[int]]) -> str:
    return ",".join(
        f"{p}:{lo}-{hi}" for p, (lo, hi) in sorted(spans.items(), key=lambda i: int(i[0]))
    )


def range_summary(meta: SnapshotMeta) -> str:
    """What a snapshot learned, in one short cell: time range and offsets of a replay;
    next offsets of a trainer snapshot."""
    replay = meta.extra.get("replay")
    if isinstance(replay, dict):
        window = replay.get("time_range") or {}
        when = f"{_when_ms(window.get('from_ms'))}..{_when_ms(window.get('to_ms'))}"
        return f"{when} {_spans(replay.get('offset_ranges') or {})}".strip()
    parts = [f"{p}:<{o}" for parts in meta.offsets.values() for p, o in sorted(parts.items())]
    return ",".join(parts) or "-"


def _row(
    meta: SnapshotMeta,
    current: int | None,
    pinned: bool,
    k: int,
    delta_of: int | None,
    experiments: list[dict[str, Any]],
) -> dict[str, Any]:
    is_current = meta.version == current
    return {
        "delta_of": delta_of,
        "version": meta.version,
        "created_at": meta.created_at,
        "created": _when(meta.created_at),
        "origin": meta.origin,
        "events": meta.events_seen,
        "range": range_summary(meta),
        f"hit@{k}": meta.metrics.get(f"hit@{k}"),
        f"mrr@{k}": meta.metrics.get(f"mrr@{k}"),
        "current": is_current,
        "pinned": is_current and pinned,
        "model_class": meta.model_class,
        "content_hash": meta.content_hash,
        "verified": True,
        "experiments": experiments,
    }


def version_rows(store: SnapshotStore, k: int) -> list[dict[str, Any]]:
    """Kept versions, newest first, as ``streamrec models list --json`` prints them;
    versions that do not verify come with ``verified: false`` and their ``error``."""
    current, pinned = store.current_version(), store.is_pinned()
    good, bad = store.inspect_versions()
    deltas = store.delta_hints()
    outcomes = experiment_outcomes(store)
    rows = [
        _row(meta, current, pinned, k, deltas.get(meta.version), outcomes.get(meta.version, []))
        for meta in good
    ]
    hints = store.origin_hints()
    rows += [
        {
            "version": v,
            "origin": hints.get(v, "?"),
            "current": v == current,
            "pinned": v == current and pinned,
            "verified": False,
            "error": error,
        }
        for v, error in bad
    ]
    rows.sort(key=lambda r: -int(r["version"]))
    return rows


@redis_errors
def experiment_outcomes(store: SnapshotStore) -> dict[int, list[dict[str, Any]]]:
    """The finished experiments each kept version served in, with the decision and the
    per-arm served quality it was taken on (:mod:`streams.experiment.results`)."""
    return results.by_version(store.redis, store.keys)


def _outcome(
    store: SnapshotStore, action: str, by: str, current: int | None, pinned: bool, **extra: Any
) -> dict[str, Any]:
    log.info(
        "model_action action=%s by=%s model=%s current=%s pinned=%s",
        action,
        by,
        store.model_name,
        current,
        pinned,
    )
    return {"model": store.model_name, "current": current, "pinned": pinned, **extra}


class VersionNotKept(SnapshotError):
    """The version asked for is not (or no longer) in the store."""


def promote(store: SnapshotStore, version: int, by: str) -> dict[str, Any]:
    """Serve ``version`` and pin it; refused (SnapshotError) unless it verifies and loads."""
    if version not in store.versions():
        raise VersionNotKept(f"no snapshot {store.model_name} version {version}")
    store.promote(version)
    return _outcome(store, "promote", by, version, True)


def rollback(store: SnapshotStore, by: str) -> dict[str, Any]:
    """Serve the newest verifiable version older than current, and pin it."""
    before = store.current_version()
    version = store.rollback()
    return _outcome(store, "rollback", by, version, True, previous=before)


def follow(store: SnapshotStore, by: str) -> dict[str, Any]:
    """Unpin; serve the newest trainer version (``current`` None when there is none yet)."""
    return _outcome(store, "follow", by, store.follow(), False)


def cli_line(outcome: dict[str, Any]) -> str:
    """The one line ``streamrec models`` prints: ``current=7 pinned=true model=m``.

    >>> cli_line({"model": "m", "current": 3, "pinned": True, "previous": 5})
    'current=3 pinned=true previous=5 model=m'
    """
    shown = {
        "current": "none-yet" if outcome["current"] is None else outcome["current"],
        "pinned": str(outcome["pinned"]).lower(),
    }
    if "previous" in outcome:
        shown["previous"] = outcome["previous"]
    shown["model"] = outcome["model"]
    return " ".join(f"{key}={value}" for key, value in shown.items())
