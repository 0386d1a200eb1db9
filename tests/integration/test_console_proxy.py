"""`streamrec console`: the console of a real scorer (with tokens), served by a process
of its own that forwards the page, its data and the actions."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from streams.services.embedded import free_port
from streams.services.processes import ChildProcess, wait_for
from streams.settings import Settings
from streams.state.snapshot_store import SnapshotStore
from tests.support.scorer import ADMIN_TOKEN, READ_TOKEN, http_json, wait_ready, with_tokens
from tests.support.snapshots import popularity_on

pytestmark = pytest.mark.integration


def page(url: str) -> tuple[bytes, str]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read(), str(response.headers["Content-Security-Policy"])


def test_the_console_process_forwards_to_its_scorer(
    settings: Settings, store: SnapshotStore, tmp_path: Path
) -> None:
    v1, v2 = store.publish(popularity_on("A")), store.publish(popularity_on("B"))
    s = with_tokens(settings)
    env = {**os.environ, **s.to_env(), "STREAMREC_LOG_LEVEL": "warning"}
    scorer_url = f"http://127.0.0.1:{s.web_port}"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    scorer = ChildProcess.streamrec(["scorer"], env, tmp_path / "scorer.log")
    console = ChildProcess.streamrec(
        ["console", "--scorer", scorer_url, "--port", str(port)], env, tmp_path / "console.log"
    )
    try:
        wait_ready(s, scorer)
        wait_for(lambda: http_json(f"{base}/console/state")[0] == 401, 30, "the console")
        # The same page, with the scorer's Content-Security-Policy.
        assert page(f"{base}/console") == page(f"{scorer_url}/console")
        assert page(f"{base}/")[0] == page(f"{base}/console")[0]  # / leads to the page
        assert http_json(f"{base}/console/assets/nothing.js")[0] == 404
        # Only the console's paths: not the rest of the API.
        with pytest.raises(urllib.error.HTTPError) as not_here:
            urllib.request.urlopen(f"{base}/recommendations/u1", timeout=5)
        assert not_here.value.code == 404

        status, state = http_json(f"{base}/console/state", token=READ_TOKEN)
        assert status == 200 and state["served"]["version"] == v2
        assert [row["version"] for row in state["versions"]] == [v2, v1]
        # With its query: the page asks only for the samples after its newest one.
        assert http_json(f"{base}/console/state?since=x", token=READ_TOKEN)[0] == 400
        later = http_json(f"{base}/console/state?since=1e12", token=READ_TOKEN)[1]
        assert later["history"] == []

        # The scorer checks the role and records who acted.
        promote = f"{base}/models/promote"
        assert http_json(promote, token=READ_TOKEN, post={"version": v1})[0] == 403
        status, body = http_json(promote, token=ADMIN_TOKEN, post={"version": v1})
        assert (status, body["current"], body["pinned"]) == (200, v1, True)
        assert store.current_version() == v1
        assert http_json(f"{base}/console/state", token=READ_TOKEN)[1]["served"]["version"] == v1
        assert http_json(f"{base}/models/follow", token=ADMIN_TOKEN, post={})[1]["current"] == v2

        # A scorer that went away: 502 with a reason, and the console keeps running.
        assert scorer.stop() == 0, scorer.output()[-3000:]
        status, body = http_json(f"{base}/console/state", token=READ_TOKEN, timeout=15)
        assert status == 502 and "did not answer" in body["error"]
        assert console.alive()
    finally:
        scorer.stop()
        assert console.stop() == 0, console.output()[-3000:]
    assert "model_action action=promote by=api:ops" in scorer.output()
    assert "console ready: http://127.0.0.1" in console.output()
    assert ADMIN_TOKEN not in console.output()
