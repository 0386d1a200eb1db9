"""``streamrec console``: the console page of a scorer, served from a process of its own.

For an operator's machine or a host that reaches the scorers while browsers do not:
it forwards the page, its assets, ``/console/state`` (with its query) and the three model
actions to one scorer, with the browser's ``Authorization`` header, and answers with the
scorer's status, body and headers. So the page, the token check, the roles and the audit
trail are the scorer's own; this process holds no token and no state.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

from aiohttp import ClientError, ClientSession, ClientTimeout, web

from online_model.errors import ConfigurationError

log = logging.getLogger(__name__)

#: What the browser may ask for: the console's own paths and the actions it offers.
ROUTES = (
    ("GET", "/console"),
    ("GET", "/console/assets/{name}"),
    ("GET", "/console/state"),
    ("POST", "/models/promote"),
    ("POST", "/models/rollback"),
    ("POST", "/models/follow"),
)
#: Request headers passed to the scorer, and answer headers passed back.
_FORWARD = ("Authorization", "Content-Type")
_ANSWER = (
    "Content-Type",
    "Content-Security-Policy",
    "X-Content-Type-Options",
    "Cache-Control",
    "WWW-Authenticate",
)


def scorer_base(url: str) -> str:
    """``http(s)://host[:port]`` of the scorer, without a trailing slash.

    >>> scorer_base("http://10.0.0.5:6066/")
    'http://10.0.0.5:6066'
    >>> scorer_base("host:6066")
    Traceback (most recent call last):
    ...
    online_model.errors.ConfigurationError: --scorer must be http(s)://host[:port], got 'host:6066'
    """
    parts = urlsplit(url.strip())
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        parts = parts._replace(netloc="")
    if parts.scheme not in {"http", "https"} or not parts.hostname or parts.path not in {"", "/"}:
        raise ConfigurationError(f"--scorer must be http(s)://host[:port], got {url!r}")
    if parts.query or parts.fragment:
        raise ConfigurationError(f"--scorer must be http(s)://host[:port], got {url!r}")
    return f"{parts.scheme}://{parts.netloc}"


def create_app(scorer: str, timeout_s: float = 10.0) -> web.Application:
    """An aiohttp app that forwards :data:`ROUTES` to the scorer at ``scorer``."""
    base = scorer_base(scorer)
    app = web.Application()
    session_key = web.AppKey("session", ClientSession)

    async def session(app: web.Application) -> AsyncIterator[None]:
        app[session_key] = ClientSession(timeout=ClientTimeout(total=timeout_s))
        yield
        await app[session_key].close()

    app.cleanup_ctx.append(session)

    async def forward(request: web.Request) -> web.Response:
        headers = {name: request.headers[name] for name in _FORWARD if name in request.headers}
        body = await request.read() if request.method == "POST" else None
        try:
            async with app[session_key].request(
                request.method, base + request.rel_url.path_qs, headers=headers, data=body
            ) as answer:
                content = await answer.read()
                passed = {name: answer.headers[name] for name in _ANSWER if name in answer.headers}
                return web.Response(status=answer.status, body=content, headers=passed)
        except (TimeoutError, ClientError) as exc:
            log.warning("console_scorer_unreachable scorer=%s error=%r", base, exc)
            return web.json_response(
                {"error": f"the scorer at {base} did not answer: {exc!r}"}, status=502
            )

    async def to_console(request: web.Request) -> web.Response:
        raise web.HTTPFound("/console")

    app.router.add_get("/", to_console)
    for method, path in ROUTES:
        app.router.add_route(method, path, forward)
    return app
