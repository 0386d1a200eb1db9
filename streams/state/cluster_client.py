"""Clients of a Redis Cluster (``STREAMREC_REDIS_CLUSTER``), built from ``REDIS_URL``.

``REDIS_URL`` names one node (user, password and TLS as for a single server), or several
separated by commas (``redis://user:pw@10.0.0.1:6379,10.0.0.2:6379``), so that a process
starts while one of them is down; redis-py finds the others from the first that answers
(``CLUSTER SLOTS``) and sends each command to the node owning its keys' slot. The
synchronous client asks the cluster for its nodes when it is made, so a cluster that no
node of answers is a :class:`~streams.errors.StoreUnavailable` (one line) rather than
redis-py's bare ``RedisClusterException``. The asyncio client asks on its first command.

A command whose master is down fails after two quick retries (:data:`RETRIES`, 10-100 ms
apart) rather than redis-py's default ten, up to a second apart (2.6-4.4 s measured on a
refused connection): callers ride out an unavailable Redis themselves (the scorer
degrades behind a breaker, the trainer publishes again at its next interval), and a
scorer batch should not wait seconds for the users of one lost master. Slot moves
(``MOVED``, ``ASK``) are followed whatever this says.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
import redis.asyncio.cluster
import redis.cluster
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import RedisClusterException
from redis.retry import Retry

from streams.errors import StoreUnavailable

#: Options of a single server's client that a cluster client does not take.
_SINGLE_NODE_ONLY = ("health_check_interval",)
#: Retries of a command that found its node down or the cluster down, and their backoff.
RETRIES = 2
BACKOFF_BASE_S, BACKOFF_CAP_S = 0.01, 0.1


def seed_nodes(url: str) -> tuple[str, list[tuple[str, int]]]:
    """``url`` with its first node only, and the other nodes it names (host, port).

    >>> seed_nodes("redis://u:p@10.0.0.1:7000,10.0.0.2:7001,[::1]/0")
    ('redis://u:p@10.0.0.1:7000/0', [('10.0.0.2', 7001), ('::1', 6379)])
    >>> seed_nodes("rediss://node:6380")
    ('rediss://node:6380', [])
    """
    parts = urlsplit(url)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    first, *others = hosts.split(",")
    netloc = f"{userinfo}{at}{first}"
    return urlunsplit(parts._replace(netloc=netloc)), [_host_port(h) for h in others]


def _host_port(text: str) -> tuple[str, int]:
    if text.startswith("["):  # [IPv6]:port
        host, _, rest = text[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else 6379
    host, _, port = text.partition(":")
    return host, int(port) if port else 6379


def _cluster_kwargs(kwargs: dict[str, Any], retry: type[Any] = Retry) -> dict[str, Any]:
    out = {k: v for k, v in kwargs.items() if k not in _SINGLE_NODE_ONLY}
    backoff = ExponentialWithJitterBackoff(base=BACKOFF_BASE_S, cap=BACKOFF_CAP_S)
    out.setdefault("retry", retry(backoff, RETRIES))
    return out


def cluster_client(url: str, **kwargs: Any) -> redis.cluster.RedisCluster:
    """A ``RedisCluster`` for the cluster whose nodes ``url`` names (one is enough)."""
    first, others = seed_nodes(url)
    nodes = [redis.cluster.ClusterNode(host, port) for host, port in others]
    try:
        return redis.cluster.RedisCluster.from_url(
            first, startup_nodes=nodes, **_cluster_kwargs(kwargs)
        )
    except (RedisClusterException, redis.RedisError) as exc:
        raise StoreUnavailable(f"redis cluster unavailable at REDIS_URL: {exc}") from exc


def async_cluster_client(url: str, **kwargs: Any) -> redis.asyncio.cluster.RedisCluster:
    """The asyncio ``RedisCluster`` for the same cluster (connects on its first command)."""
    first, others = seed_nodes(url)
    nodes = [redis.asyncio.cluster.ClusterNode(host, port) for host, port in others]
    return redis.asyncio.cluster.RedisCluster.from_url(
        first, startup_nodes=nodes, **_cluster_kwargs(kwargs, AsyncRetry)
    )
