"""Tokens, roles, bind rules and the OpenAPI description of the scorer's REST API."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from online_model.errors import ConfigurationError
from streams.api_tokens import Role, parse_api_tokens
from streams.scorer import auth, openapi
from streams.scorer.auth import ApiTokens, check_bind
from streams.settings import Secret, Settings
from tests.unit.test_cli_errors import streamrec

TOKEN = "s3cret-token-0123456789"


def test_tokens_are_read_with_their_roles() -> None:
    tokens = ApiTokens(parse_api_tokens(f"ops:admin:{TOKEN}, grafana : read : {TOKEN[::-1]}"))
    assert [(t.name, t.role) for t in tokens.tokens] == [
        ("ops", Role.ADMIN),
        ("grafana", Role.READ),
    ]
    assert TOKEN not in repr(tokens.tokens)
    found = tokens.authenticate(f"Bearer {TOKEN}")
    assert found is not None and found.name == "ops"
    reader = tokens.authenticate(f"bearer {TOKEN[::-1]}")
    assert reader is not None and reader.role is Role.READ
    for header in (None, "", TOKEN, f"Basic {TOKEN}", f"Bearer {TOKEN}x", "Bearer ", f"{TOKEN} x"):
        assert tokens.authenticate(header) is None, header
    assert not ApiTokens(parse_api_tokens(""))


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (f"ops:{TOKEN}", "write it as name:role:token"),
        (f":admin:{TOKEN}", "write it as name:role:token"),
        ("ops:admin:", "write it as name:role:token"),
        (f"ops:root:{TOKEN}", "role must be read or admin, got 'root'"),
        ("ops:admin:short", "at least 16 characters"),
        ("ops:admin:has a space in it!!", "no spaces"),
        (f"ops:admin:{TOKEN},ops:read:{TOKEN}x", "must each be unique"),
        (f"ops:admin:{TOKEN},dash:read:{TOKEN}", "must each be unique"),
    ],
)
def test_a_bad_token_list_is_refused_without_showing_a_token(value: str, says: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        Settings.from_env({"STREAMREC_API_TOKENS": value})
    assert says in str(refused.value)
    assert TOKEN not in str(refused.value) and "short" not in str(refused.value)


def test_the_api_binds_loopback_unless_told_and_never_open_beyond_it() -> None:
    from streams.scorer.app import faust_app

    assert Settings().web_bind == "127.0.0.1"
    assert faust_app(Settings(insecure_dev=True)).conf.web_bind == "127.0.0.1"
    for loopback in ("127.0.0.1", "::1", "localhost"):
        check_bind(Settings(web_bind=loopback))
    with pytest.raises(ConfigurationError, match="not a loopback address"):
        check_bind(Settings(web_bind="0.0.0.0"))
    check_bind(Settings(web_bind="0.0.0.0", api_tokens=Secret(f"ops:admin:{TOKEN}")))
    check_bind(Settings(web_bind="0.0.0.0", insecure_dev=True))
    with pytest.raises(ConfigurationError, match="must be an IP address"):
        Settings.from_env({"STREAMREC_WEB_BIND": "example.com"})


def test_an_open_bind_without_tokens_stops_the_scorer_before_it_starts() -> None:
    refused = streamrec("scorer", env={"STREAMREC_WEB_BIND": "0.0.0.0"})
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.startswith("error: STREAMREC_WEB_BIND=0.0.0.0 is not a loopback")
    assert "Traceback" not in refused.stderr
    bad = streamrec("models", "list", env={"STREAMREC_API_TOKENS": f"ops:owner:{TOKEN}"})
    assert bad.returncode == 2 and "error: STREAMREC_API_TOKENS entry 1 (ops)" in bad.stderr
    assert TOKEN not in bad.stderr


def test_every_registered_route_is_described_and_every_description_is_a_route() -> None:
    from streams.scorer.app import create_app

    app = create_app(Settings(insecure_dev=True))
    app.web.init_server()  # type: ignore[attr-defined]
    registered = {
        (route.resource.canonical, route.method)
        for route in app.web.web_app.router.routes()  # type: ignore[attr-defined]
        if route.method != "HEAD" and route.resource is not None
    }
    assert registered == set(openapi.roles())
    assert openapi.roles()[("/models/promote", "POST")] is Role.ADMIN
    assert {path for (path, _), role in openapi.roles().items() if role is Role.OPEN} == {
        "/livez",
        "/readyz",
        "/healthz",
        "/console",  # the static page and its assets: the data needs a read token
        "/console/assets/{name}",
    }
    assert openapi.roles()[("/console/state", "GET")] is Role.READ


def test_the_description_is_valid_openapi() -> None:
    import schemathesis

    schema = schemathesis.openapi.from_dict(openapi.document())
    schema.validate()  # against the OpenAPI 3.0 meta-schema
    described = {(op.ok().path, op.ok().method.upper()) for op in schema.get_all_operations()}
    assert described == set(openapi.roles())


async def _statuses(tokens: str, calls: list[tuple[str, str, str | None]]) -> list[int]:
    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"caller": request.get(auth.caller_key())})

    roles = {("/open", "GET"): Role.OPEN, ("/read", "GET"): Role.READ, ("/act", "POST"): Role.ADMIN}
    app = web.Application(middlewares=[auth.middleware(ApiTokens(parse_api_tokens(tokens)), roles)])
    for path in ("/open", "/read", "/undescribed"):
        app.router.add_get(path, ok)
    app.router.add_post("/act", ok)
    statuses = []
    async with TestClient(TestServer(app)) as client:
        for method, path, token in calls:
            headers: dict[str, Any] = {"Authorization": f"Bearer {token}"} if token else {}
            async with client.request(method, path, headers=headers) as response:
                statuses.append(response.status)
    return statuses


def test_the_middleware_enforces_each_route_role() -> None:
    reader, admin = "r" * 20, "a" * 20
    calls: list[tuple[str, str, str | None]] = [
        ("GET", "/open", None),
        ("GET", "/read", None),
        ("GET", "/read", reader),
        ("POST", "/act", reader),
        ("POST", "/act", admin),
        ("GET", "/undescribed", reader),  # a route nobody described: admin only
        ("GET", "/undescribed", admin),
        ("GET", "/missing", None),  # no route: 401 before 404, the API is not mapped
        ("GET", "/missing", reader),
        ("PUT", "/read", reader),
    ]
    statuses = asyncio.run(_statuses(f"g:read:{reader},o:admin:{admin}", calls))
    assert statuses == [200, 401, 200, 403, 200, 403, 200, 401, 404, 405]
    # No tokens configured: everything passes (the scorer then listens on loopback only).
    assert asyncio.run(_statuses("", [*calls[:2], calls[3]])) == [200, 200, 200]


async def _answers(
    tokens: str, calls: list[tuple[str, str, str | None]]
) -> list[tuple[int, str, str, dict[str, Any]]]:
    """(status, content type, WWW-Authenticate or Allow, JSON body) per call, through the
    scorer's two middlewares (the token check, then unrouted requests as JSON)."""
    from streams.scorer import not_found

    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    middlewares = [
        auth.middleware(ApiTokens(parse_api_tokens(tokens)), {("/read", "GET"): Role.READ}),
        not_found.middleware(),
    ]
    app = web.Application(middlewares=middlewares)
    app.router.add_get("/read", ok)
    out = []
    async with TestClient(TestServer(app)) as client:
        for method, path, authorization in calls:
            headers = {"Authorization": authorization} if authorization is not None else {}
            async with client.request(method, path, headers=headers) as response:
                header = response.headers.get("WWW-Authenticate", "") or response.headers.get(
                    "Allow", ""
                )
                body: dict[str, Any] = await response.json()
                out.append((response.status, response.content_type, header, body))
    return out


def test_a_missing_token_and_a_wrong_one_are_told_apart_without_telling_more() -> None:
    reader = "r" * 20
    wrong = "w" * 20
    answers = asyncio.run(
        _answers(
            f"g:read:{reader}",
            [
                ("GET", "/read", None),
                ("GET", "/read", ""),
                ("GET", "/read", "Bearer "),
                ("GET", "/read", f"Basic {reader}"),
                ("GET", "/read", f"Bearer {wrong}"),
                ("GET", "/read", f"Bearer {reader}x"),
                ("GET", "/no-such", None),
                ("GET", "/no-such", f"Bearer {wrong}"),
            ],
        )
    )
    missing = (401, "application/json", 'Bearer realm="streamrec"', {"error": auth.MISSING_TOKEN})
    invalid = (
        401,
        "application/json",
        'Bearer realm="streamrec", error="invalid_token"',
        {"error": auth.INVALID_TOKEN},
    )
    assert answers == [missing] * 4 + [invalid] * 2 + [missing, invalid]
    assert auth.MISSING_TOKEN.startswith("missing token")
    assert auth.INVALID_TOKEN.startswith("invalid token")
    for _, _, header, body in answers:
        assert reader not in header + body["error"] and wrong not in header + body["error"]


def test_an_unrouted_request_answers_json_in_the_error_shape() -> None:
    reader = "r" * 20
    for tokens, authorization in (("", None), (f"g:read:{reader}", f"Bearer {reader}")):
        answers = asyncio.run(
            _answers(
                tokens,
                [
                    ("GET", "/no-such/path", authorization),
                    ("POST", "/read", authorization),
                    ("GET", "/read", authorization),
                ],
            )
        )
        (nf_status, nf_type, _, nf_body), (na_status, na_type, allow, na_body), ok = answers
        assert (nf_status, nf_type) == (404, "application/json")
        assert nf_body == {
            "error": "not found: GET /no-such/path is not an endpoint of this scorer "
            "(see /openapi.json)"
        }
        assert (na_status, na_type) == (405, "application/json")
        assert "POST /read" in na_body["error"] and "GET" in allow
        assert ok[0] == 200
        # Both are what the description says a request matching no operation gets.
        document = openapi.document()
        for name, body in (("NotFound", nf_body), ("MethodNotAllowed", na_body)):
            described = document["components"]["responses"][name]
            schema = described["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/Error"}
            assert document["components"]["schemas"]["Error"]["required"] == ["error"]
            assert list(body) == ["error"] and isinstance(body["error"], str)
