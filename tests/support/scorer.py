"""Talking to a running scorer over HTTP, and waiting until it serves."""

from __future__ import annotations

import dataclasses
import json
import re
import urllib.error
import urllib.request
from typing import Any

from streams.services.processes import ChildProcess, wait_for
from streams.settings import Secret, Settings

#: Tokens of a scorer started by :func:`with_tokens` (named ``grafana`` and ``ops``).
READ_TOKEN = "grafana-read-0123456789abcdef"
ADMIN_TOKEN = "ops-admin-0123456789abcdef"


def with_tokens(settings: Settings) -> Settings:
    """``settings`` with a read token (grafana) and an admin token (ops)."""
    tokens = f"grafana:read:{READ_TOKEN},ops:admin:{ADMIN_TOKEN}"
    return dataclasses.replace(settings, api_tokens=Secret(tokens))


def http_json(
    url: str, timeout: float = 2.0, token: str | None = None, post: Any = None
) -> tuple[int, Any]:
    """GET ``url`` (POST ``post`` as JSON when given) -> (status, decoded body);
    ``token`` goes in ``Authorization: Bearer``."""
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    if post is not None:
        request.data = json.dumps(post).encode()
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def http_text(url: str, timeout: float = 2.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return str(response.read().decode())


def wait_ready(settings: Settings, proc: ChildProcess, timeout: float = 60.0) -> None:
    """Wait until the scorer's REST API answers /healthz."""

    def ready() -> bool:
        assert proc.alive(), proc.output()[-3000:]
        status, _ = http_json(f"http://127.0.0.1:{settings.web_port}/healthz")
        return status == 200

    wait_for(ready, timeout, "scorer /healthz")


def wait_assigned(settings: Settings, proc: ChildProcess, timeout: float = 60.0) -> None:
    """Wait until the scorer answers /healthz AND its consumer holds partitions (a
    group join takes about half the session timeout on Tansu)."""

    def assigned() -> bool:
        assert proc.alive(), proc.output()[-3000:]
        status, body = http_json(f"http://127.0.0.1:{settings.web_port}/healthz")
        return status == 200 and body["assigned_partitions"] > 0

    wait_for(assigned, timeout, "scorer partitions assigned")


def metric_value(text: str, name: str) -> float:
    """The value of the unlabelled metric ``name`` in a /metrics page (it must be there)."""
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert match, f"{name} is not in /metrics"
    return float(match.group(1))
