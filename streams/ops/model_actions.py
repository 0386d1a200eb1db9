"""What an operator does to a model: promote, roll back, follow.

``streamrec models promote|rollback|follow`` and the scorer's ``POST /models/...`` both
call these, so both check, move ``current`` and log the same way. Each returns where
``current`` points afterwards; the store does the work in one Lua script and publishes
the hint running scorers swap on.
"""

from __future__ import annotations

import logging
from typing import Any

from streams.state.snapshot_store import SnapshotStore

log = logging.getLogger(__name__)


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


def promote(store: SnapshotStore, version: int, by: str) -> dict[str, Any]:
    """Serve ``version`` and pin it; refused (SnapshotError) unless it verifies and loads."""
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
