"""Property-based: every endpoint of a real scorer against its own /openapi.json.

schemathesis generates requests from the description the scorer serves (valid ones and,
in its negative phases, invalid ones) and checks each answer: no 5xx, a documented
status, content type and headers, a body that matches the response schema, and 401
when the token is left out. Examples are bounded so the test stays short.
"""

from __future__ import annotations

import dataclasses
import json
import os
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis

from streams.scorer import openapi
from streams.services.processes import ChildProcess
from streams.settings import Secret
from streams.wiring import snapshot_store
from tests.support.fixtures import ServiceEndpoints, settings_for
from tests.support.scorer import http_json, wait_ready
from tests.support.snapshots import popularity_on

ADMIN_TOKEN = "schemathesis-admin-0123456789"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
#: Per operation and phase; enough to reach every status an operation documents.
MAX_EXAMPLES = 15


@pytest.fixture(scope="module")
def scorer_url(
    services: ServiceEndpoints, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A scorer with tokens, serving a model that knows a few pages, kept for the module."""
    tmp: Path = tmp_path_factory.mktemp("openapi")
    settings = dataclasses.replace(
        settings_for(services, uuid.uuid4().hex[:10], tmp),
        api_tokens=Secret(f"ops:admin:{ADMIN_TOKEN}"),
    )
    store = snapshot_store(settings)
    for prefix in "AB":  # two versions, so that promote, rollback and follow can succeed
        store.publish(popularity_on(prefix))
    scorer = ChildProcess.streamrec(
        ["scorer"], {**os.environ, **settings.to_env()}, tmp / "scorer.log"
    )
    try:
        wait_ready(settings, scorer)
        yield f"http://127.0.0.1:{settings.web_port}"
    finally:
        code = scorer.stop()
    log = scorer.output()
    assert code == 0, log[-3000:]
    assert "Traceback" not in log, log[-3000:]


def described() -> Any:
    """The description, loaded when the module is (schemathesis' fixture-loaded schemas do
    not run under pytest 9); the test checks that the scorer serves this very document."""
    schema = schemathesis.openapi.from_dict(openapi.document())
    schema.config.update(headers=AUTH)
    schema.config.generation.update(max_examples=MAX_EXAMPLES)
    return schema


@pytest.fixture(scope="module")
def served(scorer_url: str) -> str:
    status, document = http_json(f"{scorer_url}/openapi.json", token=ADMIN_TOKEN)
    assert status == 200 and document == openapi.document()
    return scorer_url


#: The HTTP server's request-line limit (aiohttp: 8190 bytes). A longer request gets its
#: plain-text 400 before any view runs; a schema cannot bound a whole URL's length.
MAX_REQUEST_LINE = 8190


@described().parametrize()
def test_every_endpoint_answers_as_described(case: Any, served: str) -> None:
    response = case.call(base_url=served, headers=AUTH)
    too_long = len(response.request.path_url) > MAX_REQUEST_LINE - len("GET  HTTP/1.1") - 100
    plain = response.headers.get("content-type", [""])[0].startswith("text/plain")
    if too_long and response.status_code == 400 and plain:
        # Long rule lists past the request-line limit: the server's own plain-text refusal.
        # A long URL still under the limit reaches the views, whose 400 is checked below.
        return
    case.validate_response(response)


def test_a_path_that_is_no_operation_answers_as_the_description_says(served: str) -> None:
    """404 (and 405) with the ``Error`` body of ``components/responses``, not aiohttp's
    plain text; still after the token check."""
    document = openapi.document()
    error_schema = document["components"]["schemas"]["Error"]
    for path, method, status, name in (
        ("/no-such-operation", "GET", 404, "NotFound"),
        ("/readyz", "POST", 405, "MethodNotAllowed"),
    ):
        request = urllib.request.Request(served + path, method=method, headers=AUTH)
        with pytest.raises(urllib.error.HTTPError) as answered:
            urllib.request.urlopen(request, timeout=5)
        response = answered.value
        assert response.code == status
        described = document["components"]["responses"][name]
        assert response.headers["Content-Type"].startswith(next(iter(described["content"])))
        body = json.loads(response.read())
        assert set(body) == set(error_schema["required"]) and isinstance(body["error"], str)
        for header in described.get("headers", {}):
            assert response.headers[header], header
    assert http_json(f"{served}/no-such-operation")[0] == 401  # no token: not mapped
