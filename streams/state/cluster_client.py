"""Clients of a Redis Cluster (``STREAMREC_REDIS_CLUSTER``), built from ``REDIS_URL``.

``REDIS_URL`` names one node (user, password and TLS as for a single server); redis-py
finds the others from it (``CLUSTER SLOTS``) and sends each command to the node owning its
keys' slot. The synchronous client asks the cluster for its nodes when it is made, so a
cluster that no node of answers is a :class:`~streams.errors.StoreUnavailable` (one line)
rather than redis-py's bare ``RedisClusterException``. The asyncio client asks on its
first command.
"""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio.cluster
import redis.cluster
from redis.exceptions import RedisClusterException

from streams.errors import StoreUnavailable

#: Options of a single server's client that a cluster client does not take.
_SINGLE_NODE_ONLY = ("health_check_interval",)


def _cluster_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if k not in _SINGLE_NODE_ONLY}


def cluster_client(url: str, **kwargs: Any) -> redis.cluster.RedisCluster:
    """A ``RedisCluster`` for the cluster one node of which ``url`` names."""
    try:
        return redis.cluster.RedisCluster.from_url(url, **_cluster_kwargs(kwargs))
    except (RedisClusterException, redis.RedisError) as exc:
        raise StoreUnavailable(f"redis cluster unavailable at REDIS_URL: {exc}") from exc


def async_cluster_client(url: str, **kwargs: Any) -> redis.asyncio.cluster.RedisCluster:
    """The asyncio ``RedisCluster`` for the same cluster (connects on its first command)."""
    return redis.asyncio.cluster.RedisCluster.from_url(url, **_cluster_kwargs(kwargs))
