"""The operations console: one web page on each scorer (``GET /console``).

The page is static HTML, JavaScript and CSS shipped in the package (``console/``), with
no build step and nothing fetched from elsewhere: it asks for a bearer token when the
API needs one (kept in the tab's sessionStorage), polls ``GET /console/state`` every few
seconds and draws its charts from the samples the scorer keeps. Promote, rollback and
follow call the admin ``POST /models/...`` endpoints, which check the role and record who
acted.

``/console/state`` gathers what this scorer already holds — its counters, served model
and quality, readiness, the kept versions and the running experiment — so it costs a
Redis read or two, not a scan; and the consumer lag of the scorer's and the trainer's
groups per partition (:mod:`streams.io.consumer_lag`: three small broker requests at
most every two seconds, on a thread of their own). It also returns the samples of the
last hour the charts draw (:mod:`streams.scorer.console_history`): all of them, or with
``?since=<t>`` those taken after ``t``, which is what the page asks for after its first
poll.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

import faust
import redis
from faust.web import Request, Response, View

from online_model.errors import SnapshotError
from streams.errors import StoreUnavailable
from streams.io.consumer_lag import LagMonitor
from streams.io.json_values import finite
from streams.lifecycle import model_actions
from streams.scorer import console_history
from streams.scorer.runtime import ScorerRuntime
from streams.settings import Settings
from streams.state.trainer_status import TrainerStatus

#: Files the page is made of, and their content types; nothing else is served.
ASSETS = {
    "console.js": "text/javascript",
    "console.css": "text/css",
}
#: The page runs only its own script and style and talks only to this scorer.
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}

Readiness = Callable[[], Awaitable[tuple[dict[str, Any], int]]]


def asset(name: str) -> str:
    """The text of one file of the page (``index.html`` or one of :data:`ASSETS`)."""
    return resources.files("streams.scorer").joinpath("console", name).read_text("utf-8")


def counters(rt: ScorerRuntime) -> dict[str, Any]:
    """Totals since start: page views in, recommendations out, dead letters by reason."""
    metrics = rt.metrics
    dead: dict[str, int] = {}
    for family in metrics.dead_letters.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                dead[sample.labels["reason"]] = int(sample.value)
    scored = int(metrics.registry.get_sample_value("streamrec_events_scored_total") or 0)
    return {
        "events_in": scored + sum(dead.values()),
        "events_out": scored,
        "dead_letters": dead,
        "send_retries": int(metrics.registry.get_sample_value("streamrec_send_retries_total") or 0),
        "redis_errors": int(metrics.registry.get_sample_value("streamrec_redis_errors_total") or 0),
    }


def served(rt: ScorerRuntime, k: int) -> dict[str, Any]:
    """The model this scorer serves, how fresh it is, and its rolling served quality."""
    current = rt.holder.current
    quality = rt.metrics.quality
    return {
        "model_name": rt.core.model_name,
        "version": current.version,
        "model_class": current.model_class,
        "created_at": current.created_at,
        "age_s": time.time() - current.created_at if current.created_at else None,
        "swaps": rt.holder.swaps,
        "snapshots_rejected": rt.holder.rejected,
        "last_error": rt.holder.last_error,
        "judged": quality.judged,
        f"hit@{k}": quality.hit_rate,
        f"mrr@{k}": quality.mrr,
    }


def experiment(rt: ScorerRuntime) -> dict[str, Any] | None:
    """The running experiment and its per-arm figures over every scorer (last poll)."""
    running = rt.experiments.experiment
    if running is None:
        return None
    return {
        "id": running.id,
        "champion": running.champion,
        "challenger": running.challenger,
        "share": running.share,
        "shadow": running.shadow,
        "auto": running.auto,
        "started_at": running.started_at,
        "figures": rt.experiments.figures,
    }


def versions(rt: ScorerRuntime, k: int) -> dict[str, Any]:
    """What scorers of the model name serve (``serving``: namespace, version, why) and
    the kept versions of that namespace (the rows of ``GET /models``), each with what
    this scorer saw it serve; blocking (Redis), so called from a thread."""
    by_version = rt.metrics.quality_by_version
    error: str | None = None
    serving: dict[str, Any] | None = None
    try:
        now, rows = model_actions.served_rows(rt.lifecycle, rt.stores, k)
        serving = now.to_dict()
    except (StoreUnavailable, redis.RedisError, SnapshotError, OSError) as exc:
        rows, error = [], f"versions unavailable: {exc}"
    for row in rows:
        seen = by_version.get(int(row["version"]))
        row["served"] = (
            None
            if seen is None
            else {"judged": seen.judged, f"hit@{k}": seen.hit_rate, f"mrr@{k}": seen.mrr}
        )
    return {"serving": serving, "versions": rows, "versions_error": error}


async def take_sample(
    rt: ScorerRuntime, settings: Settings, lag: LagMonitor | None = None
) -> console_history.Sample:
    """A sample of what the charts draw: counters and served quality in memory, and the
    lag through ``lag`` (its shared read, refreshed when older than 2 s)."""
    report = await lag.report() if lag is not None else None
    k = settings.k
    return console_history.sample_of(time.time(), counters(rt), served(rt, k), k, report)


def since_param(request: Request) -> float | None:
    """``?since=<t>`` of a ``/console/state`` request (None: absent); ValueError unless
    a finite number."""
    return parse_since(request.query.get("since"))


def parse_since(raw: str | None) -> float | None:
    """The value of ``?since=`` (None: absent); ValueError unless a finite number.

    >>> parse_since("1700000000.5"), parse_since(None)
    (1700000000.5, None)
    """
    if raw is None:
        return None
    value = float(raw)
    if not math.isfinite(value):
        raise ValueError(raw)
    return value


def trainer_status(rt: ScorerRuntime) -> dict[str, Any] | None:
    """The status record of the trainer of the served namespace (None: none alive or
    Redis away): streams/state/trainer_status.py."""
    try:
        return TrainerStatus(rt.store.redis, rt.serving).read()
    except StoreUnavailable:
        return None


async def state(
    rt: ScorerRuntime,
    settings: Settings,
    readiness: Readiness,
    lag: LagMonitor | None = None,
    history: console_history.History | None = None,
    since: float | None = None,
) -> dict[str, Any]:
    """Everything the console page shows, as of now, and the samples of ``history``
    taken after ``since`` (all for None)."""
    k = settings.k
    health, _ = await readiness()
    kept = await asyncio.get_running_loop().run_in_executor(None, versions, rt, k)
    consumer_lag = (await lag.report()).as_dict() if lag is not None else None
    trainer = await asyncio.get_running_loop().run_in_executor(None, trainer_status, rt)
    return finite(
        {
            "time": time.time(),
            "k": k,
            "started_at": rt.started_at,
            "health": health,
            "counters": counters(rt),
            "served": served(rt, k),
            "served_by_version": [
                {"version": v, "judged": q.judged, f"hit@{k}": q.hit_rate, f"mrr@{k}": q.mrr}
                for v, q in sorted(rt.metrics.quality_by_version.items())
            ],
            **kept,
            "experiment": experiment(rt),
            "consumer_lag": consumer_lag,
            "trainer": trainer,
            "history_interval_s": console_history.INTERVAL_S,
            "history": [s.as_dict(k) for s in history.since(since)] if history is not None else [],
        }
    )


def add_views(
    app: faust.App,
    settings: Settings,
    rt: ScorerRuntime,
    readiness: Readiness,
    lag: LagMonitor | None = None,
) -> None:
    """Register ``/console``, its assets and ``/console/state`` on ``app``, and sample
    the charts' figures while its web server runs."""
    history = console_history.History()

    async def take() -> console_history.Sample:
        return await take_sample(rt, settings, lag)

    web_app = app.web.web_app  # type: ignore[attr-defined]  # the aiohttp driver's
    console_history.sample_in_background(web_app, history, take)

    @app.page("/console")
    class Page(View):
        async def get(self, request: Request) -> Response:
            # The page asks for a token before its first poll only where one is needed
            # (a refused poll would show as an error in the browser's console).
            auth = "bearer" if settings.api_tokens else "none"
            page = asset("index.html").replace("__AUTH__", auth)
            return self.html(page, headers=dict(_HEADERS))

    @app.page("/console/assets/{name}")
    class Asset(View):
        async def get(self, request: Request, name: str) -> Response:
            if name not in ASSETS:
                return self.json({"error": f"no console asset {name!r}"}, status=404)
            return self.text(asset(name), content_type=ASSETS[name], headers=dict(_HEADERS))

    @app.page("/console/state")
    class State(View):
        async def get(self, request: Request) -> Response:
            try:
                since = since_param(request)
            except ValueError:
                return self.json({"error": "since must be a number (seconds)"}, status=400)
            return self.json(await state(rt, settings, readiness, lag, history, since))
