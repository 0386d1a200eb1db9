"""A scorer is ready only once it serves the stored model, and says so in one line.

It used to answer /healthz 200 "ok" with model_version 0 (serving cold-start lists) for
about 5 s after start although a snapshot was waiting in Redis, counted Faust's own topic
in ``assigned_partitions`` (4 for a 3-partition topic), printed nothing when ready and
started its log with terminal escape codes.
"""

from __future__ import annotations

import time
from pathlib import Path

from online_model.models.covisit import Covisitation
from online_model.persist.snapshot import Snapshot, SnapshotMeta
from streams.io.topics import ensure_topics
from streams.services.processes import ChildProcess, wait_for
from streams.settings import Settings
from streams.wiring import snapshot_store
from tests.support.fixtures import on_every_engine
from tests.support.scorer import http_json


def trained() -> Covisitation:
    model = Covisitation()
    for user in range(20):
        for step in range(10):
            model.learn_one(f"u{user}", f"p{(user + step) % 15}")
    return model


@on_every_engine
def test_not_ready_until_the_stored_model_is_served(
    settings: Settings, settings_env: dict[str, str], tmp_path: Path
) -> None:
    ensure_topics(settings)
    version = snapshot_store(settings).publish(Snapshot(SnapshotMeta("x"), trained()))
    base = f"http://127.0.0.1:{settings.web_port}"
    scorer = ChildProcess.streamrec(["scorer"], settings_env, tmp_path / "scorer.log")
    seen: list[tuple[str, int, int | None]] = []  # (endpoint, status, model_version)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and sum(s == 200 for _, s, _ in seen) < 10:
            assert scorer.alive(), scorer.output()[-3000:]
            for endpoint in ("/readyz", "/healthz"):
                try:
                    status, body = http_json(base + endpoint, timeout=2)
                except OSError:  # not listening yet
                    continue
                seen.append((endpoint, status, body.get("model_version")))
            time.sleep(0.02)
        assert http_json(f"{base}/livez")[0] == 200
        health = wait_for(
            lambda: (h := http_json(f"{base}/readyz")[1])["assigned_partitions"] and h,
            60,
            "partitions assigned",
        )
        log = scorer.output()
    finally:
        code = scorer.stop()
    ready = [(e, s, v) for e, s, v in seen if s == 200]
    assert ready, seen[-10:]
    assert all(v == version for _, _, v in ready), [r for r in ready if r[2] != version][:5]
    assert all(s == 503 for _, s, _ in seen[: seen.index(ready[0])])
    assert health["assigned_partitions"] == settings.partitions == 3
    assert code == 0, log[-3000:]
    # One line when ready, first in the log, no terminal codes in a file.
    assert log.startswith("scorer ready: "), log[:300]
    assert "\x1b" not in log and "\b" not in log
    [line] = [x for x in log.splitlines() if x.startswith("scorer ready: ")]
    assert f":{settings.web_port}" in line and f"version {version} " in line


def test_with_no_snapshot_it_is_ready_with_the_cold_start_model_and_says_so(
    settings: Settings, settings_env: dict[str, str], tmp_path: Path
) -> None:
    ensure_topics(settings)
    base = f"http://127.0.0.1:{settings.web_port}"
    scorer = ChildProcess.streamrec(["scorer"], settings_env, tmp_path / "scorer.log")
    try:
        wait_for(lambda: http_json(f"{base}/readyz")[0] == 200, 60, "ready")
        body = http_json(f"{base}/readyz")[1]
        log = wait_for(lambda: "scorer ready: " in scorer.output() and scorer.output(), 10, "line")
    finally:
        scorer.stop()
    assert body["status"] == "ok" and body["model_version"] == 0
    assert "version 0 (cold-start popularity: no snapshot yet)" in log
