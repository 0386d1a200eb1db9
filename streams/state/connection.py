"""Redis connection failures, as streamrec reports them."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

import redis
import redis.asyncio.cluster
import redis.cluster

from streams.errors import StoreUnavailable

F = TypeVar("F", bound=Callable[..., Any])

#: What says Redis cannot answer now (rather than refusing a command): a connection or a
#: timeout, and on a cluster a slot whose master is down or moving (``CLUSTERDOWN``,
#: ``TRYAGAIN``) or no node answering. redis-py's cluster errors are not all RedisErrors.
UNAVAILABLE: tuple[type[Exception], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.exceptions.ClusterError,
    redis.exceptions.TryAgainError,
    redis.exceptions.SlotNotCoveredError,
    redis.exceptions.RedisClusterUnreachableError,
)
#: Every failure of a Redis call a degrading reader (histories) rides out.
REDIS_FAILURES: tuple[type[Exception], ...] = (
    redis.RedisError,
    redis.exceptions.RedisClusterException,
    OSError,
)


def redis_error_line(exc: BaseException) -> str | None:
    """What an operator reads for a Redis error, in one line (None: not one).

    >>> redis_error_line(redis.exceptions.InvalidResponse("Protocol Error: H"))
    'the server at REDIS_URL does not speak the Redis protocol (is it Redis?): Protocol Error: H'
    """
    if isinstance(exc, StoreUnavailable):
        return str(exc)
    if isinstance(exc, redis.exceptions.RedisClusterException | redis.exceptions.ClusterError):
        return f"redis cluster unavailable: {exc}"
    if not isinstance(exc, redis.RedisError):
        return None
    if isinstance(exc, redis.exceptions.InvalidResponse):
        return f"the server at REDIS_URL does not speak the Redis protocol (is it Redis?): {exc}"
    if isinstance(exc, redis.AuthenticationError):
        return f"Redis refused the credentials of REDIS_URL: {exc}"
    if isinstance(exc, redis.exceptions.NoPermissionError):
        return f"Redis refused this to the user of REDIS_URL (ACL, docs/redis-acl.md): {exc}"
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
        return f"redis unavailable: {exc}"
    return f"Redis answered with an error: {exc}"


def redis_errors(func: F) -> F:
    """Raise :class:`StoreUnavailable` where Redis cannot be reached or times out."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except UNAVAILABLE as exc:
            raise StoreUnavailable(f"redis unavailable: {exc}") from exc

    return cast(F, wrapper)


def is_cluster(client: Any) -> bool:
    """Whether ``client`` (a client or one of its pipelines) talks to a Redis Cluster:
    what decides the key layout (:class:`~streams.state.keys.ModelKeys`)."""
    return isinstance(
        client,
        redis.cluster.RedisCluster
        | redis.cluster.ClusterPipeline
        | redis.asyncio.cluster.RedisCluster
        | redis.asyncio.cluster.ClusterPipeline,
    )
