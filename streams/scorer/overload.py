"""A bound on the recommendation requests a scorer works on at once: past it, 503 at once.

A scorer serves REST on the same event loop (and the same two Redis threads) that score
its page views. Without a bound, a client asking faster than the scorer answers makes
every request wait longer (the queue grows as long as the overload lasts) and takes loop
time and Redis reads from the batches of page views. With one, a request that would be
the ``STREAMREC_REST_MAX_IN_FLIGHT`` + 1st in progress is answered ``503`` with
``Retry-After`` and an ``Error`` body before any work is done; the requests in progress,
and the page views, keep their pace. ``streamrec_rest_refused_total`` counts refusals and
``streamrec_rest_in_flight`` shows the requests in progress.

Only ``GET /recommendations/{user_id}`` is bounded (:data:`BOUNDED_ROUTES`): the probes
(``/livez``, ``/readyz``, ``/healthz``) must answer an orchestrator under load,
``/metrics`` must show the overload, and the model actions are rare admin calls. The
middleware runs after the token check (:func:`streams.scorer.auth.middleware`): a caller
without a token gets 401, not 503, and takes no place in the bound.
"""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiohttp import web

    from streams.settings import Settings

log = logging.getLogger(__name__)

#: The routes (aiohttp canonical paths) whose requests in progress are bounded.
BOUNDED_ROUTES = frozenset({"/recommendations/{user_id}"})
#: Seconds a refused client is asked to wait (``Retry-After``): the whole seconds HTTP
#: allows, the shortest. An overload of a second or two clears; a longer one refuses again.
RETRY_AFTER_S = 1
#: The refusals of an overload are logged at most this often (one line, with the count).
LOG_EVERY_S = 10.0

OVERLOADED = "overloaded: this scorer is answering as many recommendation requests as it may"


class InFlightLimit:
    """Counts the bounded requests in progress and refuses those past ``limit``
    (0: no bound: :meth:`middleware` is then never installed, see :func:`middlewares`)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0
        self.refused = 0
        self._logged_at = 0.0
        self._logged_refused = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> InFlightLimit:
        return cls(settings.rest_max_in_flight)

    def _note_refusal(self) -> None:
        self.refused += 1
        now = time.monotonic()
        if now - self._logged_at >= LOG_EVERY_S:
            log.warning(
                "rest_overloaded refused=%d since_last_line=%d max_in_flight=%d",
                self.refused,
                self.refused - self._logged_refused,
                self.limit,
            )
            self._logged_at, self._logged_refused = now, self.refused

    def middleware(self) -> Any:
        """An aiohttp middleware answering 503 past ``limit`` requests in progress."""
        from aiohttp import web

        headers = {"Retry-After": str(RETRY_AFTER_S)}
        # Made once: a refusal must cost as little as possible, it comes in floods.
        body = json.dumps(
            {"error": f"{OVERLOADED} ({self.limit}); retry after {RETRY_AFTER_S} s"}
        ).encode()

        @web.middleware
        async def bounded(request: web.Request, handler: Any) -> web.StreamResponse:
            resource = request.match_info.route.resource
            if resource is None or resource.canonical not in BOUNDED_ROUTES:
                return await handler(request)
            if self.in_flight >= self.limit:
                self._note_refusal()
                return web.Response(
                    body=body, status=503, headers=headers, content_type="application/json"
                )
            self.in_flight += 1
            try:
                return await handler(request)
            finally:
                self.in_flight -= 1

        return bounded


def middlewares(limit: InFlightLimit) -> list[Any]:
    """The bound's middleware, or none when it is off (``limit.limit == 0``)."""
    return [limit.middleware()] if limit.limit > 0 else []
