"""The bound on recommendation requests in progress (streams/scorer/overload.py)."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from online_model.errors import ConfigurationError
from streams.scorer import overload
from streams.scorer.metrics import ScorerMetrics
from streams.scorer.model_holder import ModelHolder
from streams.settings import Settings


async def _flood(limit: overload.InFlightLimit, requests: int) -> dict[str, list[int]]:
    """``requests`` concurrent recommendation requests, held until all have arrived or
    been refused; then a probe. Each path's statuses."""
    release = asyncio.Event()
    arrived = 0

    async def recommend(request: web.Request) -> web.Response:
        nonlocal arrived
        arrived += 1
        await release.wait()
        return web.json_response({"user_id": request.match_info["user_id"]})

    async def probe(request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    app = web.Application(middlewares=overload.middlewares(limit))
    app.router.add_get("/recommendations/{user_id}", recommend)
    app.router.add_get("/livez", probe)
    out: dict[str, list[int]] = {"recommendations": [], "livez": [], "retry_after": []}
    async with TestClient(TestServer(app)) as client:

        async def ask(i: int) -> None:
            async with client.get(f"/recommendations/u{i}") as response:
                out["recommendations"].append(response.status)
                if response.status == 503:
                    out["retry_after"].append(int(response.headers["Retry-After"]))
                    assert "overloaded" in (await response.json())["error"]

        tasks = [asyncio.ensure_future(ask(i)) for i in range(requests)]
        for _ in range(500):  # until every request is held or answered
            if arrived + len(out["recommendations"]) >= requests:
                break
            await asyncio.sleep(0.01)
        assert limit.in_flight == min(requests, limit.limit or requests)
        async with client.get("/livez") as response:  # probes are never bounded
            out["livez"].append(response.status)
        release.set()
        await asyncio.gather(*tasks)
    assert limit.in_flight == 0
    return out


def test_requests_past_the_bound_get_503_with_retry_after_at_once() -> None:
    limit = overload.InFlightLimit(3)
    out = asyncio.run(_flood(limit, 8))
    assert sorted(out["recommendations"]) == [200] * 3 + [503] * 5
    assert out["retry_after"] == [overload.RETRY_AFTER_S] * 5
    assert out["livez"] == [200]
    assert limit.refused == 5
    metrics = ScorerMetrics(ModelHolder(), 10)
    metrics.watch_rest_limit(limit)
    text = metrics.render().decode()
    assert "streamrec_rest_refused_total 5.0" in text
    assert "streamrec_rest_in_flight 0.0" in text


def test_zero_is_no_bound() -> None:
    assert overload.middlewares(overload.InFlightLimit(0)) == []
    assert Settings().rest_max_in_flight > 0
    assert Settings.from_env({"STREAMREC_REST_MAX_IN_FLIGHT": "0"}).rest_max_in_flight == 0
    with pytest.raises(ConfigurationError, match="STREAMREC_REST_MAX_IN_FLIGHT"):
        Settings.from_env({"STREAMREC_REST_MAX_IN_FLIGHT": "-1"})
