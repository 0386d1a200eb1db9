"""The trainer lease: one trainer learns a model at a time.

A Redis key (``streamrec:<model_name>:trainer-lease``, :mod:`streams.state.keys`) set NX
with a TTL and holding the owner's token. The owner refreshes it; a trainer that cannot
(killed, partitioned) loses it when it expires, and the next trainer takes over from the
newest trainer snapshot.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from typing import Any

from streams.state.connection import is_cluster, redis_errors
from streams.state.keys import ModelKeys

logger = logging.getLogger(__name__)

# KEYS: lease   ARGV: token, ttl_ms. 1 = held and extended, 2 = re-acquired, 0 = lost.
_REFRESH = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 2
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class TrainerLease:
    """The right to learn one model: a Redis key set NX with a TTL, held by a token.

    A trainer that cannot refresh the lease before it expires (killed, partitioned)
    loses it; another trainer then takes over from the newest trainer snapshot.
    """

    def __init__(self, redis: Any, model_name: str, ttl_s: float = 10.0) -> None:
        self.redis = redis
        self.key = ModelKeys(model_name, is_cluster(redis)).trainer_lease
        self.ttl_ms = max(1, int(ttl_s * 1000))
        self.token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._refresh = redis.register_script(_REFRESH)
        self._release = redis.register_script(_RELEASE)

    @redis_errors
    def acquire(self) -> bool:
        """Take the lease if free; True when this trainer holds it."""
        return bool(self.redis.set(self.key, self.token, nx=True, px=self.ttl_ms))

    @redis_errors
    def holder(self) -> str | None:
        raw = self.redis.get(self.key)
        return None if raw is None else raw.decode()

    @redis_errors
    def refresh(self) -> bool:
        """Extend the lease; False when another trainer holds it now.

        An expired lease nobody took (e.g. Redis was down for everyone) is re-taken.
        """
        result = int(self._refresh(keys=[self.key], args=[self.token, self.ttl_ms]))
        if result == 2:
            logger.warning("trainer lease re-acquired key=%s token=%s", self.key, self.token)
        return result != 0

    @redis_errors
    def release(self) -> None:
        self._release(keys=[self.key], args=[self.token])
