"""Who may call the scorer's REST API: bearer tokens with a read or an admin role.

``STREAMREC_API_TOKENS`` holds ``name:role:token`` entries separated by commas
(:mod:`streams.api_tokens` reads them). When it is set, every endpoint but the
orchestrator probes (``/livez``, ``/readyz``, ``/healthz``) and the console's static page
(``/console`` and its assets, which hold no data: the page reads ``/console/state`` with
a token) needs ``Authorization: Bearer <token>``: 401 without one (``missing token``) or
with a wrong one (``invalid token``), 403 when the token's role is below the endpoint's.
Which role an endpoint needs is written in the OpenAPI description
(:mod:`streams.scorer.openapi`), the one place that lists them.

A token is compared with every configured token in constant time (SHA-256 digests
through :func:`hmac.compare_digest`, no early exit), and never logged: logs and the
audit trail name the token's ``name``.
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from online_model.errors import ConfigurationError
from streams.api_tokens import ApiToken, Role, parse_api_tokens, token_digest

if TYPE_CHECKING:
    from aiohttp import web

    from streams.settings import Settings

log = logging.getLogger(__name__)


@functools.cache
def caller_key() -> Any:
    """The request key under which the authenticated token's name is kept for handlers
    (made on first use: aiohttp is imported only where a web server runs)."""
    from aiohttp import web

    request_key = getattr(web, "RequestKey", None)  # aiohttp >= 3.11
    return request_key("streamrec_caller", str) if request_key else "streamrec_caller"


def bearer_credential(authorization: str | None) -> str | None:
    """The credential of a ``Bearer`` ``Authorization`` header; None when there is none
    (no header, another scheme, or nothing after ``Bearer``).

    >>> bearer_credential("Bearer abc "), bearer_credential("Basic abc"), bearer_credential("")
    ('abc', None, None)
    """
    scheme, _, presented = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        return None
    return presented.strip()


#: What a 401 says: no bearer token was sent, or the one sent is not configured. Neither
#: tells more (which tokens exist, how close the one sent came).
MISSING_TOKEN = "missing token: send Authorization: Bearer <token>"
INVALID_TOKEN = "invalid token: not one of this scorer's STREAMREC_API_TOKENS"


class ApiTokens:
    """The configured tokens; empty means the API is open (loopback only, see below)."""

    def __init__(self, tokens: tuple[ApiToken, ...]) -> None:
        self.tokens = tokens

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiTokens:
        return cls(parse_api_tokens(settings.api_tokens.get()))

    def __bool__(self) -> bool:
        return bool(self.tokens)

    def authenticate(self, authorization: str | None) -> ApiToken | None:
        """The token an ``Authorization`` header carries, or None.

        Every configured token is compared, whatever matched earlier, so the time taken
        does not tell how many tokens exist or which one came close.
        """
        presented = bearer_credential(authorization)
        if presented is None:
            return None
        candidate = token_digest(presented)
        found: ApiToken | None = None
        for token in self.tokens:
            if hmac.compare_digest(candidate, token.digest):
                found = token
        return found


def local_url(settings: Settings, path: str) -> str:
    """The URL of ``path`` on this machine's scorer."""
    host = "127.0.0.1" if settings.web_bind in {"0.0.0.0", "::"} else settings.web_bind
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{settings.web_port}{path}"


def curl_example(settings: Settings, token: str) -> str:
    """A curl line asking this machine's scorer for recommendations with ``token``."""
    url = local_url(settings, "/recommendations/u1?k=5")
    return f"curl -H 'Authorization: Bearer {token}' '{url}'"


def is_loopback(host: str) -> bool:
    """``127.0.0.1``, ``::1``, ``localhost``: only this machine can connect."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(settings: Settings) -> None:
    """Refuse to listen beyond loopback with no tokens, unless ``STREAMREC_INSECURE_DEV=1``.

    Recommendations reveal what a user viewed, and promote/rollback change what every
    user is served: an open API is only acceptable where nobody else can reach it.
    """
    if settings.api_tokens or is_loopback(settings.web_bind):
        return
    if settings.insecure_dev:
        log.warning(
            "rest_api_open bind=%s reason=STREAMREC_API_TOKENS_unset msg='anyone who reaches "
            "this address can read recommendations and move models. Development only.'",
            settings.web_bind,
        )
        return
    raise ConfigurationError(
        f"STREAMREC_WEB_BIND={settings.web_bind} is not a loopback address and "
        "STREAMREC_API_TOKENS is not set: set tokens (name:role:token,...), bind 127.0.0.1, "
        "or set STREAMREC_INSECURE_DEV=1 for a development machine"
    )


Handler = Callable[["web.Request"], Awaitable["web.StreamResponse"]]


def middleware(tokens: ApiTokens, roles: Mapping[tuple[str, str], Role]) -> Any:
    """An aiohttp middleware enforcing ``roles`` ((path pattern, METHOD) -> role).

    A route missing from ``roles`` needs an admin token (a test keeps every route
    described, so this only guards against an endpoint added without a description);
    a request matching no route (404, 405) needs a read token, so an anonymous client
    cannot map the API.
    """
    from aiohttp import web

    def refuse(status: int, message: str, challenge: str = "") -> web.Response:
        # RFC 6750: the challenge names the realm, and error="invalid_token" for a wrong one.
        headers = {"WWW-Authenticate": f'Bearer realm="streamrec"{challenge}'}
        return web.json_response(
            {"error": message}, status=status, headers=headers if status == 401 else None
        )

    @web.middleware
    async def authorize(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not tokens:
            return await handler(request)
        resource = request.match_info.route.resource
        method = "GET" if request.method == "HEAD" else request.method
        if resource is None:
            needed = Role.READ
        else:
            needed = roles.get((resource.canonical, method), Role.ADMIN)
        if needed is Role.OPEN:
            return await handler(request)
        authorization = request.headers.get("Authorization")
        token = tokens.authenticate(authorization)
        if token is None:
            missing = bearer_credential(authorization) is None
            log.debug(
                "api_refused status=401 reason=%s method=%s path=%s",
                "missing_token" if missing else "invalid_token",
                request.method,
                request.path,
            )
            if missing:
                return refuse(401, MISSING_TOKEN)
            return refuse(401, INVALID_TOKEN, ', error="invalid_token"')
        if token.role < needed:
            log.warning(
                "api_refused status=403 caller=%s method=%s path=%s",
                token.name,
                request.method,
                request.path,
            )
            return refuse(
                403,
                f"token {token.name!r} has role {token.role.name.lower()}; "
                f"{request.method} {request.path} needs {needed.name.lower()}",
            )
        request[caller_key()] = token.name
        return await handler(request)

    return authorize
