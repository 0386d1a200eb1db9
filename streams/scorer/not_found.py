"""Requests that match no route answer in the API's error shape, not aiohttp's plain text.

aiohttp answers a path it has no route for with ``404: Not Found`` (and a method a path
does not take with ``405: Method Not Allowed``) as ``text/plain``; every other refusal of
the REST API is JSON ``{"error": "..."}`` (the ``Error`` schema of
:mod:`streams.scorer.openapi`). This middleware gives those two the same shape. It runs
after the token check (:func:`streams.scorer.auth.middleware`), so a caller without a
token still gets 401 and cannot map the API.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiohttp import web

#: Longest part of the request path repeated in a 404 message.
MAX_PATH_CHARS = 200


def not_found_message(method: str, path: str) -> str:
    """What a 404 says: the request, and where the endpoints are listed.

    >>> not_found_message("GET", "/no-such")
    'not found: GET /no-such is not an endpoint of this scorer (see /openapi.json)'
    """
    shown = path if len(path) <= MAX_PATH_CHARS else path[:MAX_PATH_CHARS] + "…"
    return f"not found: {method} {shown} is not an endpoint of this scorer (see /openapi.json)"


def middleware() -> Any:
    """An aiohttp middleware answering unrouted requests (404, 405) with a JSON error."""
    from aiohttp import web

    @web.middleware
    async def unrouted_as_json(request: web.Request, handler: Any) -> web.StreamResponse:
        failure = request.match_info.http_exception
        if failure is None:
            return await handler(request)
        if isinstance(failure, web.HTTPMethodNotAllowed):
            allowed = sorted(failure.allowed_methods)
            return web.json_response(
                {
                    "error": f"method not allowed: {request.method} {request.path[:MAX_PATH_CHARS]}"
                    f" takes {', '.join(allowed)}"
                },
                status=405,
                headers={"Allow": ",".join(allowed)},
            )
        if isinstance(failure, web.HTTPNotFound):
            return web.json_response(
                {"error": not_found_message(request.method, request.path)}, status=404
            )
        return await handler(request)

    return unrouted_as_json
