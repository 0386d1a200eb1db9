"""The live trainer shards of a model, and which partitions each one learns.

Shards started with ``--shard auto`` share the partitions among themselves through a
Redis sorted set (``streamrec:<model>:trainer-shards``, :mod:`streams.state.keys`): each
one keeps its token there with an expiry a lease TTL ahead, refreshed every beat, and
drops the expired ones. Every shard computes the same assignment from the same list
(:func:`assign`). The assignment only says who *should* learn a partition: the partition's
lease says who does, so two shards that briefly disagree (one saw a member join before the
other) never learn one partition together; the one without the lease waits for it.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Sequence
from typing import Any

from streams.state.connection import is_cluster, redis_errors
from streams.state.keys import ModelKeys


def assign(partitions: Sequence[int], members: Sequence[str], me: str) -> set[int]:
    """The partitions ``me`` learns: the sorted partitions dealt round-robin to the sorted
    members (so each gets ``len(partitions) / len(members)``, give or take one).

    >>> sorted(assign([0, 1, 2], ["a", "b"], "a")), sorted(assign([0, 1, 2], ["a", "b"], "b"))
    ([0, 2], [1])
    >>> assign([0, 1], ["b"], "a")
    set()
    """
    ordered = sorted(members)
    if me not in ordered:
        return set()
    mine = ordered.index(me)
    return {p for i, p in enumerate(sorted(partitions)) if i % len(ordered) == mine}


class ShardMembers:
    """This shard's entry among the live shards of ``model_name``."""

    def __init__(self, redis: Any, model_name: str, ttl_s: float = 10.0) -> None:
        self.redis = redis
        self.key = ModelKeys(model_name, is_cluster(redis)).trainer_shards
        self.ttl_ms = max(1, int(ttl_s * 1000))
        self.token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    @redis_errors
    def beat(self) -> list[str]:
        """Say this shard is alive for another TTL; return every live shard's token."""
        now = int(time.time() * 1000)
        pipe = self.redis.pipeline(transaction=False)
        pipe.zremrangebyscore(self.key, "-inf", now)
        pipe.zadd(self.key, {self.token: now + self.ttl_ms})
        pipe.pexpire(self.key, 10 * self.ttl_ms)
        pipe.zrange(self.key, 0, -1)
        members = pipe.execute()[-1]
        return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)

    @redis_errors
    def leave(self) -> None:
        """This shard stops: the others take its partitions at their next beat."""
        self.redis.zrem(self.key, self.token)
