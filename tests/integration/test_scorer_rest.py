"""What the REST API answers to requests a client gets wrong."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

from streams.services.processes import ChildProcess
from streams.settings import Settings
from tests.support.fixtures import on_every_engine
from tests.support.scorer import http_json, wait_ready


def status_and_type(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", "")


@on_every_engine
def test_bad_requests_get_a_400_and_one_log_line(
    settings: Settings, settings_env: dict[str, str], tmp_path: Path
) -> None:
    scorer = ChildProcess.streamrec(["scorer"], settings_env, tmp_path / "scorer.log")
    base = f"http://127.0.0.1:{settings.web_port}/recommendations"
    try:
        wait_ready(settings, scorer)
        assert http_json(f"{base}/u1?k=5")[0] == 200
        for bad_k in ("5_0", "%EF%BC%95", "%205", "0", "101", "x"):
            status, body = http_json(f"{base}/u1?k={bad_k}")
            assert status == 400 and "k must be" in body["error"], (bad_k, body)
        # A request line over aiohttp's 8190-byte limit: refused before any view runs.
        status, _ = status_and_type(f"{base}/{'u' * 10_000}")
        assert status == 400
        assert http_json(f"{base}/u1?k=5")[0] == 200  # and the scorer goes on
    finally:
        assert scorer.stop() == 0, scorer.output()[-3000:]
    log = scorer.output()
    assert "Traceback" not in log, log[-3000:]
    assert "bad_http_request status=400" in log
