"""The scorer's HTTP API: recommendations, readiness, liveness, metrics, model actions and
the operations console (:mod:`streams.scorer.console`).

Views are registered on the scorer's Faust app (its aiohttp server) by :func:`add_views`;
they read what the scorer runtime holds and never block the event loop. Which token
each needs, and what each answers, is in :mod:`streams.scorer.openapi`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import faust
import redis
from faust.web import Request, Response, View

from online_model.errors import ConfigurationError, SnapshotError
from streams.catalog.rules import parse_rules
from streams.errors import BadRule, StoreUnavailable
from streams.io.consumer_lag import LagMonitor, LagReader, scorer_groups
from streams.lifecycle import model_actions
from streams.scorer import console, openapi
from streams.scorer.auth import caller_key
from streams.scorer.metrics import CONTENT_TYPE_LATEST
from streams.scorer.runtime import ScorerRuntime
from streams.services.probes import kafka_reachable
from streams.settings import MAX_K, Settings, parse_count


def assigned_partitions(app: faust.App, topic: str) -> int:
    """Partitions of ``topic`` this worker consumes (Faust's own topics not counted)."""
    try:
        return sum(1 for tp in app.consumer.assignment() if tp.topic == topic)
    except Exception:  # consumer not started yet
        return 0


def parse_k(raw: str | None, default: int) -> int:
    """``?k=`` of a recommendations request (``default`` when absent); ValueError unless
    a whole number from 1 to :data:`~streams.settings.MAX_K`.

    >>> parse_k(None, 10), parse_k("3", 10)
    (10, 3)
    """
    k = default if raw is None else parse_count(raw)
    if not 1 <= k <= MAX_K:
        raise ValueError(f"k must be from 1 to {MAX_K}, got {k}")
    return k


def parse_promote_body(content: bytes | None) -> tuple[int, str | None] | None:
    """``(version, namespace)`` of a ``/models/promote`` body, None unless it is
    ``{"version": <n >= 1>[, "namespace": "<name>"]}``.

    >>> parse_promote_body(b'{"version": 3}'), parse_promote_body(b'{"version": 0}')
    ((3, None), None)
    """
    try:
        body = json.loads(content or b"null")
    except (ValueError, RecursionError):  # also UnicodeDecodeError; nested too deeply
        body = None
    ok = isinstance(body, dict) and set(body) in ({"version"}, {"version", "namespace"})
    version = body.get("version") if ok else None
    namespace = body.get("namespace") if ok else None
    if (
        type(version) is not int
        or version < 1
        or ("namespace" in body and not (isinstance(namespace, str) and namespace))
    ):
        return None
    return version, namespace


def add_views(
    app: faust.App,
    settings: Settings,
    rt: ScorerRuntime,
    assigned: Callable[[], int] | None = None,
    consumer_health: Callable[[], dict[str, Any]] | None = None,
) -> None:
    """Register the REST endpoints of one scorer on ``app``.

    ``assigned`` counts the page-views partitions the scorer consumes (default: those
    of the Faust app's own consumer; the kafka engine passes its consumer's).
    ``consumer_health`` tells whether the consumer is stalled (the kafka engine's
    :meth:`~streams.scorer.kafka_engine.ConsumeLoop.health`); None: not watched.
    """
    if consumer_health is not None:
        rt.metrics.watch_consumer(consumer_health)
    if assigned is None:

        def assigned() -> int:
            return assigned_partitions(app, settings.topic_page_views)

    @app.page("/recommendations/{user_id}")
    class Recommendations(View):
        async def get(self, request: Request, user_id: str) -> Response:
            try:
                k = parse_k(request.query.get("k"), settings.k)
            except ValueError:
                return self.json({"error": f"k must be an integer from 1 to {MAX_K}"}, status=400)
            query = request.rel_url.query  # a multidict: category and exclude may repeat
            try:
                rules = parse_rules(query.getall("category", []), query.getall("exclude", []))
            except BadRule as exc:
                return self.json({"error": str(exc)}, status=400)
            return self.json(await rt.recommend_for(user_id, k, rules))

    async def readiness() -> tuple[dict[str, Any], int]:
        """Ready = the first model load attempt has finished and Kafka answers."""
        served = rt.holder.current
        body: dict[str, Any] = {
            "model_name": settings.model_name,
            "model_namespace": rt.serving,
            "model_version": served.version,
            "model_class": served.model_class,
            "snapshot_created_at": served.created_at,
            "snapshots_rejected": rt.holder.rejected,
            "assigned_partitions": assigned(),
        }
        if not rt.model_load_attempted:
            return {"status": "starting", **body}, 503
        loop = asyncio.get_running_loop()
        kafka_ok = await loop.run_in_executor(
            None, kafka_reachable, settings.bootstrap_servers, 1.0
        )
        redis_ok = (await rt.history.read(["__healthz__"])).degraded is False
        consumer = consumer_health() if consumer_health is not None else None
        stalled = bool(consumer and consumer["stalled"])
        status = "ok" if kafka_ok and redis_ok and not stalled else "degraded"
        body = {"status": status, **body, "kafka": kafka_ok, "redis": redis_ok}
        if consumer is not None:
            body["consumer"] = consumer
        return body, 200 if kafka_ok else 503

    def challenger() -> str | None:
        running = rt.experiments.experiment
        return running.challenger if running is not None else None

    # Read on demand (console polls, /metrics scrapes), cached for a couple of seconds.
    lag = LagMonitor(
        LagReader(settings),
        settings.topic_page_views,
        lambda: scorer_groups(settings, challenger, lambda: rt.serving),
    )
    rt.metrics.watch_lag(lag)
    console.add_views(app, settings, rt, readiness, lag)

    @app.page("/readyz")
    class Ready(View):
        async def get(self, request: Request) -> Response:
            body, status = await readiness()
            return self.json(body, status=status)

    @app.page("/healthz")
    class Health(View):
        """The same as /readyz (kept: it was the only health endpoint)."""

        async def get(self, request: Request) -> Response:
            body, status = await readiness()
            return self.json(body, status=status)

    @app.page("/livez")
    class Live(View):
        """200 while the process and its event loop run: restart it only when this fails."""

        async def get(self, request: Request) -> Response:
            return self.json({"status": "alive"})

    @app.page("/metrics")
    class Metrics(View):
        async def get(self, request: Request) -> Response:
            # aiohttp sets the charset itself and refuses it inside content_type
            content_type = CONTENT_TYPE_LATEST.split(";")[0] + "; version=0.0.4"
            await lag.report()  # the consumer lag gauge, fresh (cached, bounded wait)
            return self.bytes(rt.metrics.render(), content_type=content_type)

    @app.page("/openapi.json")
    class OpenApi(View):
        async def get(self, request: Request) -> Response:
            return self.json(openapi.DOCUMENT)

    def caller(request: Request) -> str:
        """Who asks, for the record: the token's name (no tokens: the API is loopback only)."""
        return f"api:{request.get(caller_key(), 'local')}"  # type: ignore[attr-defined]

    async def on_store(view: View, work: Callable[[], Any], swap: bool = False) -> Response:
        """Run blocking store work in a thread; answer its refusals with a status. After
        an action (``swap``) this scorer swaps at once, the others on the pub/sub hint."""
        try:
            result = await asyncio.get_running_loop().run_in_executor(None, work)
        except redis.exceptions.NoPermissionError as exc:
            # Redis is there; this scorer's Redis user may not do this (docs/redis-acl.md).
            error = f"this scorer's Redis user may not do this (Redis ACL): {exc}"
            return view.json({"error": error}, status=403)
        except (StoreUnavailable, redis.RedisError) as exc:
            return view.json({"error": f"Redis is not reachable: {exc}"}, status=503)
        except model_actions.VersionNotKept as exc:
            return view.json({"error": str(exc)}, status=404)
        except (SnapshotError, ConfigurationError) as exc:
            return view.json({"error": str(exc)}, status=409)
        if swap:
            await rt.refresh_model()
        return view.json(result)

    @app.page("/models")
    class Models(View):
        async def get(self, request: Request) -> Response:
            def rows() -> list[dict[str, Any]]:
                return model_actions.served_rows(rt.lifecycle, rt.stores, settings.k)[1]

            return await on_store(self, rows)

    @app.page("/models/served")
    class ServedNow(View):
        async def get(self, request: Request) -> Response:
            return await on_store(self, lambda: rt.lifecycle.read().to_dict())

    @app.page("/models/promote")
    class Promote(View):
        async def post(self, request: Request) -> Response:
            parsed = parse_promote_body(await self.read_request_content(request))
            if parsed is None:
                return self.json(
                    {"error": 'the body must be {"version": <n >= 1>[, "namespace": "<name>"]}'},
                    status=400,
                )
            version, namespace = parsed
            by = caller(request)
            return await on_store(
                self,
                lambda: model_actions.promote(rt.lifecycle, rt.stores, version, by, namespace),
                True,
            )

    @app.page("/models/rollback")
    class Rollback(View):
        async def post(self, request: Request) -> Response:
            by = caller(request)
            return await on_store(
                self, lambda: model_actions.rollback(rt.lifecycle, rt.stores, by), True
            )

    @app.page("/models/follow")
    class Follow(View):
        async def post(self, request: Request) -> Response:
            by = caller(request)
            return await on_store(
                self, lambda: model_actions.follow(rt.lifecycle, rt.stores, by), True
            )
