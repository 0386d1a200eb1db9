"""Redis connection failures, as streamrec reports them."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

import redis

from streams.errors import StoreUnavailable

F = TypeVar("F", bound=Callable[..., Any])


def redis_errors(func: F) -> F:
    """Raise :class:`StoreUnavailable` where Redis cannot be reached or times out."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise StoreUnavailable(f"redis unavailable: {exc}") from exc

    return cast(F, wrapper)
