"""``streamrec demo``: the whole pipeline on one machine, with a summary at the end.

Starts embedded services of its own (unless external ones are configured: see
:func:`own_services`), a trainer and a scorer as real subprocesses, produces synthetic
page views (a few malformed ones among them, to show the dead-letter queue) at a fixed
rate, reads ``recommendations`` and prints what a person wants to know at a glance.
Stops everything it started.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import signal
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer

from online_model.data.generate import generate
from streams.api_tokens import new_token
from streams.io.codec import page_view_codec, recommendation_codec
from streams.io.producer import ReliableProducer, page_view
from streams.io.topics import ensure_topics
from streams.scorer.auth import curl_example, local_url
from streams.services.embedded import EmbeddedServices, free_port, port_in_use
from streams.services.processes import ChildProcess
from streams.settings import Secret, Settings

BAD_EVERY = 500  # one malformed message per this many page views


@dataclass
class DemoResult:
    """What the demo observed; ``summary()`` renders it for a person."""

    duration_s: float = 0.0
    produced: int = 0
    bad_produced: int = 0
    recommendations: int = 0
    unique_answered: int = 0
    duplicates: int = 0
    missing: int = 0
    dead_letters: int = 0
    versions: list[int] = field(default_factory=list)
    hit_first_third: float = 0.0
    hit_last_third: float = 0.0
    judged: int = 0
    latency_ms: list[float] = field(default_factory=list)

    def percentile(self, q: float) -> float:
        if not self.latency_ms:
            return float("nan")
        ordered = sorted(self.latency_ms)
        return ordered[min(len(ordered) - 1, int(q / 100.0 * len(ordered)))]

    def summary(self) -> str:
        versions = sorted(set(self.versions))
        served = [v for v in versions if v > 0]
        version_text = (
            f"{len(served)} snapshots served, v{served[0]} .. v{served[-1]}"
            if served
            else "none (cold-start popularity only)"
        )
        lines = [
            "",
            "streamrec demo — summary",
            f"  ran for                {self.duration_s:8.1f} s",
            f"  page views in          {self.produced:8d}   (+{self.bad_produced} malformed)",
            f"  recommendations out    {self.recommendations:8d}   "
            f"({self.unique_answered} page views answered, {self.missing} missing, "
            f"{self.duplicates} duplicates)",
            f"  dead-lettered          {self.dead_letters:8d}",
            f"  model versions         {version_text}",
            f"  served hit@10          first third {self.hit_first_third:6.1%}   "
            f"last third {self.hit_last_third:6.1%}   ({self.judged} judged)",
            f"  latency view→rec       p50 {self.percentile(50):7.1f} ms   "
            f"p99 {self.percentile(99):7.1f} ms",
            "",
        ]
        return "\n".join(lines)


def _malformed(i: int, good: bytes) -> bytes:
    kinds = [b"", good[:3], b"\x01" + good[1:], good[: len(good) // 2]]
    return kinds[i % len(kinds)]


def own_services(settings: Settings) -> Settings:
    """``settings`` for a demo that shares nothing with a stack already running.

    The demo gets a state dir of its own (``<state dir>/demo``, or ``demo-<pid>`` while
    another demo uses that one), so ``streamrec up``'s record of its services is neither
    read nor changed; each embedded service, and the scorer's web port, is the configured
    port when that is free, else a free one. External services stay as configured.
    """
    shared = Path(settings.state_dir)
    state_dir = shared / "demo"
    if EmbeddedServices(dataclasses.replace(settings, state_dir=state_dir)).running():
        state_dir = shared / f"demo-{os.getpid()}"

    def port(configured: int, embedded: bool = True) -> int:
        return free_port() if embedded and port_in_use(configured) else configured

    return dataclasses.replace(
        settings,
        state_dir=state_dir,
        kafka_port=port(settings.kafka_port, settings.embedded_kafka),
        redis_port=port(settings.redis_port, settings.embedded_redis),
        web_port=port(settings.web_port),
    )


def run_demo(
    settings: Settings,
    duration: float = 30.0,
    rate: float = 300.0,
    users: int = 500,
    pages: int = 300,
    progress: Callable[[str], None] | None = None,
) -> DemoResult:
    """Run the demo and return what it saw (see module docstring)."""
    say = progress or (lambda line: print(line, file=sys.stderr, flush=True))
    if not settings.snapshot_key:
        # The demo signs its snapshots with a key of its own, made for this run.
        settings = dataclasses.replace(settings, snapshot_key=Secret(secrets.token_hex(32)))
    token: str | None = None
    if not settings.api_tokens:
        # And its scorer's REST API wants a token of its own, made for this run.
        token = new_token()
        settings = dataclasses.replace(settings, api_tokens=Secret(f"demo:admin:{token}"))
    settings = own_services(settings)
    services = EmbeddedServices(settings, outlive_parent=False)
    started_services = services.up()
    if started_services:
        where = {"kafka": settings.bootstrap_servers, "redis": settings.redacted_redis_url}
        listed = ", ".join(f"{name} at {where[name]}" for name in started_services)
        say(f"started embedded {listed} for this demo (state in {settings.state_dir})")
    processes: list[ChildProcess] = []
    try:
        ensure_topics(settings)
        env = _child_env(settings)
        log_dir = Path(settings.state_dir)
        log_dir.mkdir(parents=True, exist_ok=True)
        for name in ("trainer", "scorer"):
            log_path = log_dir / f"demo-{name}.log"
            processes.append(ChildProcess.streamrec([name], env, log_path))
        say(f"started trainer and scorer (logs in {log_dir}/demo-*.log)")
        _wait_until_ready(settings, processes)
        say("scorer ready")
        shown = token or "<a token of STREAMREC_API_TOKENS>"
        made = "made for this run, admin role" if token else "yours"
        say(f"REST API while the demo runs (token {made}):\n  {curl_example(settings, shown)}")
        console_url = local_url(settings, "/console")
        if token:
            say(
                f"Console (paste the token when it asks, or open the second link, which "
                f"carries it):\n  {console_url}\n  {console_url}#token={token}"
            )
        else:
            say(f"Console (paste the token when it asks):\n  {console_url}")
        return _drive(settings, duration, rate, users, pages, say, processes)
    finally:
        for process in reversed(processes):
            code = process.stop()
            if code not in (0, -signal.SIGTERM):
                say(f"{process.name} exited with {code}; see {process.log_path}")
        if started_services:
            services.down(started_services)
            say(f"stopped embedded {', '.join(started_services)}")


def _wait_until_ready(
    settings: Settings,
    processes: list[ChildProcess],
    timeout: float = 90.0,
) -> None:
    url = f"http://127.0.0.1:{settings.web_port}/healthz"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for process in processes:
            if process.popen.poll() is not None:
                raise RuntimeError(
                    f"{process.name} exited at start "
                    f"({process.popen.returncode}); see {process.log_path}"
                )
        try:
            with urllib.request.urlopen(url, timeout=1.0) as response:
                if json.loads(response.read()).get("assigned_partitions"):
                    return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.3)
    raise RuntimeError(f"scorer did not answer {url} within {timeout:.0f} s")


def _child_env(settings: Settings) -> dict[str, str]:
    return {**os.environ, **settings.to_env()}


def _drive(
    settings: Settings,
    duration: float,
    rate: float,
    users: int,
    pages: int,
    say: Callable[[str], None],
    processes: list[ChildProcess],
) -> DemoResult:
    n_events = int(duration * rate)
    world = generate(n_users=users, n_pages=pages, n_events=max(n_events, 1), seed=7)
    rows = world.rows()
    run_id = uuid.uuid4().hex[:8]
    pv_codec = page_view_codec(settings)
    rec_codec = recommendation_codec(settings)
    producer = ReliableProducer(settings)
    consumer = Consumer(
        settings.consumer_config(
            f"streamrec-demo-{run_id}",
        )
    )
    consumer.subscribe([settings.topic_recommendations, settings.topic_dlq])
    join_deadline = time.monotonic() + 60
    while not consumer.assignment() and time.monotonic() < join_deadline:
        consumer.poll(0.1)  # join before producing, so latency is the pipeline's, not ours

    order: list[tuple[str, str, str]] = []  # (event_id, user, page) in production order
    answers: dict[str, list[str]] = {}
    result = DemoResult()
    started = time.monotonic()
    next_progress = started + 1.0

    def drain(timeout: float) -> None:
        for msg in consumer.consume(1000, timeout):
            if msg.error():
                continue
            if msg.topic() == settings.topic_dlq:
                result.dead_letters += 1
                continue
            rec = rec_codec.decode(msg.value())
            if not rec["event_id"].startswith(run_id):
                continue
            result.recommendations += 1
            if rec["event_id"] in answers:
                result.duplicates += 1
                continue
            answers[rec["event_id"]] = [i["page_id"] for i in rec["items"]]
            result.versions.append(rec["model_version"])
            result.latency_ms.append(time.time() * 1000 - rec["page_view_ts"])

    def report(now: float) -> None:
        version = max(result.versions, default=0)
        say(
            f"  t={now - started:5.1f}s  in={len(order):6d}  out={len(answers):6d}  "
            f"dlq={result.dead_letters:3d}  model=v{version}"
        )
        for process in processes:
            if process.popen.poll() is not None:
                raise RuntimeError(
                    f"{process.name} exited early ({process.popen.returncode}); "
                    f"see {process.log_path}"
                )

    say(
        f"producing {n_events} page views at {rate:.0f}/s for {duration:.0f} s "
        f"({users} users, {pages} pages)"
    )
    for i, (user, page, _, session) in enumerate(rows):
        due = started + i / rate
        while (now := time.monotonic()) < due:
            drain(min(0.05, due - now))
            if now >= next_progress:
                report(now)
                next_progress += 1.0
        event_id = f"{run_id}-{i}"
        view = page_view(user, page, int(time.time() * 1000), session, event_id=event_id)
        value = pv_codec.encode(view)
        producer.produce(settings.topic_page_views, value, key=user.encode())
        order.append((event_id, user, page))
        if i % BAD_EVERY == BAD_EVERY - 1:
            producer.produce(settings.topic_page_views, _malformed(i, value), key=user.encode())
            result.bad_produced += 1
    producer.close(30)
    deadline = time.monotonic() + 30
    while len(answers) < len(order) and time.monotonic() < deadline:
        drain(0.2)
        if time.monotonic() >= next_progress:
            report(time.monotonic())
            next_progress += 1.0
    drain(1.0)  # late dead letters
    consumer.close()

    result.duration_s = time.monotonic() - started
    result.produced = len(order)
    result.unique_answered = len(answers)
    result.missing = len(order) - len(answers)
    _served_quality(result, order, answers)
    return result


def _served_quality(
    result: DemoResult, order: list[tuple[str, str, str]], answers: dict[str, list[str]]
) -> None:
    """hit@10 of the list served before each view, over the first and last third."""
    last_served: dict[str, list[str]] = {}
    hits: list[tuple[int, bool]] = []
    for position, (event_id, user, page) in enumerate(order):
        before = last_served.get(user)
        if before:
            hits.append((position, page in before))
        if event_id in answers:
            last_served[user] = answers[event_id]
    result.judged = len(hits)
    third = len(order) / 3
    first = [hit for pos, hit in hits if pos < third]
    last = [hit for pos, hit in hits if pos >= 2 * third]
    result.hit_first_third = sum(first) / len(first) if first else 0.0
    result.hit_last_third = sum(last) / len(last) if last else 0.0


def result_json(result: DemoResult) -> dict[str, Any]:
    return {
        "duration_s": round(result.duration_s, 1),
        "produced": result.produced,
        "malformed": result.bad_produced,
        "recommendations": result.recommendations,
        "missing": result.missing,
        "duplicates": result.duplicates,
        "dead_letters": result.dead_letters,
        "versions_seen": len(set(result.versions)),
        "max_version": max(result.versions, default=0),
        "served_hit@10_first_third": round(result.hit_first_third, 4),
        "served_hit@10_last_third": round(result.hit_last_third, 4),
        "latency_ms_p50": round(result.percentile(50), 1),
        "latency_ms_p99": round(result.percentile(99), 1),
    }
