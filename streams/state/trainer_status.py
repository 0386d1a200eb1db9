"""What a trainer says about itself: alive, learning, caught up or stalled.

A running trainer writes one small JSON record (``streamrec:<model_name>:trainer-status``,
:mod:`streams.state.keys`) every few seconds with a TTL of a few times that: a missing
record means no trainer has been alive for that long. ``streamrec models status`` reads
it, so an operator sees a trainer that stopped learning (``stalled``: behind the log and
receiving nothing, :mod:`streams.io.stall_watch`) instead of a model that silently froze.
"""

from __future__ import annotations

import json
from typing import Any

from streams.state.connection import is_cluster, redis_errors
from streams.state.keys import ModelKeys

#: Seconds between two status records of a running trainer.
STATUS_INTERVAL_S = 5.0
#: A record lives this long: three missed writes mean the trainer is gone.
STATUS_TTL_S = 3 * STATUS_INTERVAL_S


class TrainerStatus:
    """Reads and writes the trainer status record of ``model_name``."""

    def __init__(self, redis: Any, model_name: str) -> None:
        self.redis = redis
        self.key = ModelKeys(model_name, is_cluster(redis)).trainer_status

    @redis_errors
    def write(self, record: dict[str, Any], ttl_s: float = STATUS_TTL_S) -> None:
        self.redis.set(self.key, json.dumps(record, sort_keys=True), px=int(ttl_s * 1000))

    @redis_errors
    def clear(self) -> None:
        """A trainer that stops cleanly says so by leaving no record."""
        self.redis.delete(self.key)

    @redis_errors
    def read(self) -> dict[str, Any] | None:
        """The last record, or None when no trainer wrote one within the TTL."""
        raw = self.redis.get(self.key)
        return None if raw is None else dict(json.loads(raw))


def state_of(record: dict[str, Any]) -> str:
    """``stalled``, ``catching up`` or ``learning`` (caught up) from a status record.

    >>> state_of({"stalled": True, "behind": 10})
    'stalled'
    >>> state_of({"stalled": False, "behind": 0})
    'learning'
    """
    if record.get("stalled"):
        return "stalled"
    return "catching up" if record.get("behind", 0) > 0 else "learning"
