"""A scorer with STREAMREC_API_TOKENS: who may read, who may move models."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from streams.scorer.auth import INVALID_TOKEN, MISSING_TOKEN
from streams.services.processes import ChildProcess, wait_for
from streams.settings import Settings
from streams.wiring import snapshot_store
from tests.support.scorer import ADMIN_TOKEN, READ_TOKEN, http_json, wait_ready, with_tokens
from tests.support.snapshots import popularity_on


def status_of(url: str, token: str | None = None, method: str = "GET") -> int:
    request = urllib.request.Request(url, method=method)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_no_token_401_read_token_cannot_promote_admin_token_can(
    settings: Settings, tmp_path: Path
) -> None:
    s = with_tokens(settings)
    env = {**os.environ, **s.to_env(), "STREAMREC_LOG_LEVEL": "warning"}
    store = snapshot_store(s)
    v1 = store.publish(popularity_on("A"))
    v2 = store.publish(popularity_on("B"))
    base = f"http://127.0.0.1:{s.web_port}"
    recommendations = f"{base}/recommendations/someone?k=3"
    scorer = ChildProcess.streamrec(["scorer"], env, tmp_path / "scorer.log")
    try:
        wait_ready(s, scorer)  # /healthz, like /readyz and /livez, needs no token
        assert status_of(f"{base}/livez") == 200 and status_of(f"{base}/readyz") == 200

        for path in ("/recommendations/someone", "/metrics", "/openapi.json", "/", "/no-such"):
            assert status_of(base + path) == 401, path
            assert status_of(base + path, token="not-a-token-0123456789") == 401, path
            assert status_of(base + path, token=READ_TOKEN) in (200, 404), path
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{base}/metrics", timeout=5)
        assert refused.value.headers["WWW-Authenticate"].startswith("Bearer")
        # No token and a wrong one are told apart; neither says more.
        assert http_json(f"{base}/metrics") == (401, {"error": MISSING_TOKEN})
        assert http_json(f"{base}/metrics", token="not-a-token-0123456789") == (
            401,
            {"error": INVALID_TOKEN},
        )
        # A path that is no endpoint answers in the API's error shape (after the token).
        status, body = http_json(f"{base}/no-such", token=READ_TOKEN)
        assert status == 404 and body["error"].startswith("not found: GET /no-such "), body
        status, body = http_json(recommendations, token=READ_TOKEN)
        assert status == 200 and body["model_version"] == v2
        status, versions = http_json(f"{base}/models", token=READ_TOKEN)
        assert status == 200 and [(v["version"], v["current"]) for v in versions] == [
            (v2, True),
            (v1, False),
        ]

        # A read token moves nothing.
        for action, post in (("promote", {"version": v1}), ("rollback", {}), ("follow", {})):
            status, body = http_json(f"{base}/models/{action}", token=READ_TOKEN, post=post)
            assert status == 403 and "needs admin" in body["error"], (action, body)
            assert http_json(f"{base}/models/{action}", post=post)[0] == 401
        assert store.current_version() == v2 and not store.is_pinned()

        # An admin token promotes; the scorer serves the version it promoted.
        status, body = http_json(f"{base}/models/promote", token=ADMIN_TOKEN, post={"version": v1})
        assert (status, body) == (
            200,
            {
                "model": s.model_name,
                "namespace": s.model_name,
                "current": v1,
                "pinned": True,
                "previous": v2,
                "previous_namespace": s.model_name,
            },
        )
        assert store.current_version() == v1 and store.is_pinned()
        wait_for(
            lambda: http_json(recommendations, token=READ_TOKEN)[1]["model_version"] == v1,
            10,
            "the scorer serving the promoted version",
        )
        # Nothing older than v1 to roll back to; an unknown version; a bad body.
        assert http_json(f"{base}/models/rollback", token=ADMIN_TOKEN, post={})[0] == 409
        status, body = http_json(f"{base}/models/promote", token=ADMIN_TOKEN, post={"version": 999})
        assert status == 404 and "no snapshot" in body["error"]
        for bad in ({"version": "1"}, {"version": 0}, {"version": v1, "x": 1}, []):
            assert http_json(f"{base}/models/promote", token=ADMIN_TOKEN, post=bad)[0] == 400
        status, body = http_json(f"{base}/models/follow", token=ADMIN_TOKEN, post={})
        assert (status, body["current"], body["pinned"]) == (200, v2, False)
        assert store.current_version() == v2 and not store.is_pinned()
    finally:
        assert scorer.stop() == 0, scorer.output()[-3000:]
    log = scorer.output()
    assert "bearer token required" in log  # the ready line says so
    assert "model_action action=promote by=api:ops" in log  # recorded, with who did it
    assert "api_refused status=403 caller=grafana" in log
    assert READ_TOKEN not in log and ADMIN_TOKEN not in log
