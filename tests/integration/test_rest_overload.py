"""A scorer flooded with recommendation requests refuses past its bound at once, and
keeps answering its page views (streams/scorer/overload.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import statistics
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from streams.io.producer import page_view
from streams.services.processes import ChildProcess
from streams.settings import Settings
from tests.support.scorer import READ_TOKEN, http_json, wait_assigned, with_tokens
from tests.support.topics import produce_page_views, read_answers

#: Requests in progress the flooded scorer takes; the flood sends far more at once.
BOUND = 2
WAVES = 3
PER_WAVE = 150
VIEWS = 300


async def _flood(base: str) -> dict[str, Any]:
    """``WAVES`` bursts of ``PER_WAVE`` concurrent requests (one connection each), with a
    liveness probe in the middle of each; every answer's status, Retry-After and time."""
    answers: list[tuple[int, str | None, float]] = []
    probes: list[int] = []
    headers = {"Authorization": f"Bearer {READ_TOKEN}"}
    connector = aiohttp.TCPConnector(limit=PER_WAVE + 1)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def ask(i: int) -> None:
            started = time.perf_counter()
            async with session.get(f"{base}/recommendations/u{i}?k=5", headers=headers) as r:
                await r.read()
                answers.append(
                    (r.status, r.headers.get("Retry-After"), time.perf_counter() - started)
                )

        async def probe() -> None:
            async with session.get(f"{base}/livez") as r:
                probes.append(r.status)

        for wave in range(WAVES):
            asks = [ask(wave * PER_WAVE + i) for i in range(PER_WAVE)]
            await asyncio.gather(*asks[: PER_WAVE // 2], probe(), *asks[PER_WAVE // 2 :])
    return {"answers": answers, "probes": probes}


def _metrics(base: str) -> str:
    request = urllib.request.Request(
        f"{base}/metrics", headers={"Authorization": f"Bearer {READ_TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return str(response.read().decode())


def test_a_flood_gets_fast_503s_while_every_page_view_is_answered(
    settings: Settings, tmp_path: Path
) -> None:
    started = time.monotonic()
    s = dataclasses.replace(with_tokens(settings), rest_max_in_flight=BOUND)
    scorer = ChildProcess.streamrec(["scorer"], {**os.environ, **s.to_env()}, tmp_path / "s.log")
    base = f"http://127.0.0.1:{s.web_port}"
    try:
        wait_assigned(s, scorer)
        now = int(time.time() * 1000)
        views = [
            page_view(f"u{i % 40}", f"p{i % 25}", now + i, event_id=f"flood-{uuid.uuid4().hex}")
            for i in range(VIEWS)
        ]
        loop = asyncio.new_event_loop()
        try:
            producing = loop.run_in_executor(None, produce_page_views, s, views)
            flood = loop.run_until_complete(_flood(base))
            report = loop.run_until_complete(producing)
        finally:
            loop.close()
        assert report.delivered == VIEWS
        answers = read_answers(s, {v["event_id"] for v in views}, timeout=60)
        assert not answers.lost, f"{len(answers.lost)} page views unanswered during the flood"

        statuses = [status for status, _, _ in flood["answers"]]
        refused = [(after, took) for status, after, took in flood["answers"] if status == 503]
        assert set(statuses) <= {200, 503} and len(statuses) == WAVES * PER_WAVE
        assert statuses.count(200) >= BOUND and len(refused) >= PER_WAVE, statuses
        assert all(after == "1" for after, _ in refused)
        # Refused at once, before any work: no slower than the answers that were served.
        served_s = [took for status, _, took in flood["answers"] if status == 200]
        refused_s = statistics.median(took for _, took in refused)
        assert refused_s < 1.0 and refused_s <= statistics.median(served_s) * 2, (
            refused_s,
            statistics.median(served_s),
        )
        assert flood["probes"] == [200] * WAVES  # probes are never bounded

        metrics = _metrics(base)
        assert f"streamrec_rest_refused_total {float(len(refused))}" in metrics
        assert "streamrec_rest_in_flight 0.0" in metrics
        assert http_json(f"{base}/recommendations/u1", token=READ_TOKEN)[0] == 200
    finally:
        assert scorer.stop() == 0, scorer.output()[-3000:]
    log = scorer.output()
    assert "Traceback" not in log, log[-3000:]
    assert "rest_overloaded refused=" in log
    assert time.monotonic() - started < 120
