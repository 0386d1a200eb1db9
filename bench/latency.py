"""Latency (page view produced -> recommendation consumed) at an offered rate, and
freshness (page view produced -> a snapshot that learned it is the one served).

Both drive the real processes (``streamrec scorer``, and ``streamrec trainer`` for
freshness) with a paced producer thread and a consumer thread in this process, so both
clocks are the same clock. Latency uses the wall time of the ``produce()`` call and of the
consumer receiving the recommendation; freshness uses the partition/offset of each page
view (delivery report), the offsets recorded in each snapshot's metadata, and the
``model_version`` / ``produced_at`` stamped on the recommendations.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from typing import Any

from confluent_kafka import Message, Producer

from streams.io.codec import RECOMMENDATION, AvroCodec
from streams.io.topics import ensure_topics
from streams.services.processes import ChildProcess
from streams.settings import Settings

from .harness import Bench, TopicTail, child_env, encode_rows, paced
from .harness import seed_histories as reset_histories
from .report import percentile, summary, target
from .world import World, publish, store_for

log = logging.getLogger(__name__)

RATES = (1_000, 5_000)
PRODUCER_LINGER_MS = 1
READER_FETCH_WAIT_MS = 5


class PacedRun:
    """Produce ``events`` at ``rate``/s while a reader thread collects recommendations."""

    def __init__(
        self,
        settings: Settings,
        producer: Producer,
        tail: TopicTail,
        rate: float,
    ) -> None:
        self.settings = settings
        self.producer = producer
        self.tail = tail
        self.rate = rate
        self.sent: dict[str, float] = {}  # event_id -> wall time of produce()
        self.where: dict[str, tuple[int | None, int | None]] = {}  # event_id -> (partition, offset)
        self.received: dict[str, float] = {}
        self.acked: dict[str, float] = {}  # event_id -> wall time the broker acked the produce
        self.scored: dict[str, float] = {}  # event_id -> produced_at stamped by the scorer (s)
        self.versions: dict[int, int] = {}  # model_version -> first produced_at (ms)
        self._codec = AvroCodec.bundled(RECOMMENDATION)
        self._stop = threading.Event()
        #: Seconds the producing loop took: ``len(events) / produce_s`` is the rate offered.
        self.produce_s = 0.0

    def _read(self) -> None:
        decode = self._codec.decode
        while not self._stop.is_set():
            msgs = self.tail.poll(0.05)
            now = time.time()
            for msg in msgs:
                rec = decode(msg.value())
                self.received.setdefault(rec["event_id"], now)
                self.scored.setdefault(rec["event_id"], rec["produced_at"] / 1000.0)
                v, at = rec["model_version"], rec["produced_at"]
                if at < self.versions.get(v, at + 1):
                    self.versions[v] = at

    def run(self, events: list[tuple[str, bytes, bytes]], drain_s: float = 5.0) -> None:
        """``events`` = (event_id, key, value); returns after the tail has drained."""
        producer = self.producer

        def delivered(event_id: str, err: Any, msg: Message) -> None:
            if err is None:
                self.acked[event_id] = time.time()
                self.where[event_id] = (msg.partition(), msg.offset())

        reader = threading.Thread(target=self._read, daemon=True)
        reader.start()
        topic = self.settings.topic_page_views
        started = time.perf_counter()
        for i in paced(producer, len(events), self.rate):
            event_id, key, value = events[i]
            self.sent[event_id] = time.time()
            producer.produce(topic, value, key, on_delivery=functools.partial(delivered, event_id))
            producer.poll(0)
        self.produce_s = time.perf_counter() - started
        producer.flush(30)
        deadline = time.monotonic() + drain_s
        while time.monotonic() < deadline and len(self.received) < len(self.sent):
            time.sleep(0.05)
        self._stop.set()
        reader.join(5)


def _events(rows: list, prefix: str, ts_ms: int | None = None) -> list[tuple[str, bytes, bytes]]:
    return [(f"{prefix}-{i}", k, v) for i, (k, v) in enumerate(encode_rows(rows, prefix, ts_ms))]


def paced_producer(settings: Settings) -> Producer:
    """One producer per section, warmed up by :func:`_wait_serving`: a new idempotent
    producer spends its first few hundred ms getting a producer id, which is not latency
    of the pipeline."""
    return Producer(settings.producer_config(**{"linger.ms": PRODUCER_LINGER_MS}))


def _wait_serving(
    settings: Settings,
    producer: Producer,
    scorer: ChildProcess,
    tail: TopicTail,
    version: int,
    timeout: float = 90.0,
) -> None:
    """Warm up: produce a few events until the scorer answers them with ``version``."""
    deadline = time.monotonic() + timeout
    n = 0
    while time.monotonic() < deadline:
        scorer.check()
        run = PacedRun(settings, producer, tail, 200)
        run.run(_events([("u0", "p1", 0, "s")] * 20, f"warm-{n}"), drain_s=2.0)
        n += 1
        log.debug(
            "warm-up round=%d delivered=%d answered=%d versions=%s",
            n,
            len(run.where),
            len(run.received),
            run.versions,
        )
        if any(v >= version for v in run.versions):  # a trainer may have moved it on
            return
    raise RuntimeError("scorer did not serve the snapshot in time")


def broker_hop(bench: Bench, rate: float, seconds: float) -> dict[str, float]:
    """The broker's floor: one hop produce -> consume at ``rate`` with no work between,
    same producer and reader settings (the pipeline makes two such hops)."""
    s = bench.run_settings("hop")
    ensure_topics(s, [s.topic_page_views])
    tail = TopicTail(s, s.topic_page_views, READER_FETCH_WAIT_MS)
    producer = paced_producer(s)
    producer.produce(s.topic_page_views, b"warm-up")
    producer.flush(30)
    lat: list[float] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            for msg in tail.poll(0.05):
                if msg.value() != b"warm-up":
                    lat.append((time.time() - float(msg.value())) * 1000)  # type: ignore[arg-type]

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    for _ in paced(producer, int(rate * seconds), rate):
        producer.produce(s.topic_page_views, str(time.time()).encode())
        producer.poll(0)
    producer.flush(30)
    time.sleep(1.0)
    stop.set()
    reader.join(5)
    tail.close()
    return {"p50": percentile(lat, 50), "p95": percentile(lat, 95), "p99": percentile(lat, 99)}


class PacedScorer:
    """A ``streamrec scorer`` on its own fresh topics and model namespace, with the bench's
    paced producer and reader; started by the constructor, serving after :meth:`wait`.

    Every paced run gets a new one: the embedded broker's fetch cost grows with the
    record batches a partition holds (docs/guarantees.md, "The embedded broker"), so a topic reused
    run after run would measure that growth rather than the scorer, and the broker's
    one-hop floor it is compared with is measured on a fresh topic too.
    """

    def __init__(self, bench: Bench, world: World, s: Settings, log_name: str) -> None:
        ensure_topics(s)
        self.s = s
        self.version = publish(s, world.model)  # type: ignore[arg-type]
        reset_histories(s, world.start_histories(s.history_length))
        self.tail = TopicTail(s, s.topic_recommendations, READER_FETCH_WAIT_MS)
        self.proc = ChildProcess.streamrec(["scorer"], child_env(s), bench.logs / f"{log_name}.log")
        self.producer = paced_producer(s)

    def wait(self) -> PacedScorer:
        """Return once the scorer answers with the published snapshot."""
        _wait_serving(self.s, self.producer, self.proc, self.tail, self.version)
        return self

    def paced(
        self, world: World, rate: int, seconds: float, prefix: str, drain_s: float
    ) -> PacedRun:
        """``rate * seconds`` page views of the world's scoring rows at ``rate``/s."""
        rows = [world.score[i % len(world.score)] for i in range(int(rate * seconds))]
        run = PacedRun(self.s, self.producer, self.tail, rate)
        run.run(_events(rows, prefix), drain_s=drain_s)
        self.proc.check()
        return run

    def close(self) -> None:
        self.tail.close()
        self.proc.stop()


def bench_latency(
    bench: Bench,
    world: World,
    duration: float,
    runs: int,
    engines: tuple[str, ...] = ("kafka", "faust"),
) -> dict[str, Any]:
    """Latency at each of :data:`RATES` for a scorer on each engine in turn; ``rates`` is
    the default engine's, ``engines`` holds every engine's."""
    hop_runs = 1 if bench.quick else runs
    # As long as a scorer run: the embedded broker slows down as a topic fills (docs/guarantees.md),
    # so the hop is measured over as many records as the pipeline runs it sees.
    hops = {rate: [broker_hop(bench, rate, duration) for _ in range(hop_runs)] for rate in RATES}
    by_engine: dict[str, dict[str, Any]] = {}
    for engine in engines:
        rates, rss = _latency_of(bench, world, engine, duration, runs, hops)
        by_engine[engine] = {"rates": rates, "scorer_peak_rss_mb": rss}
    default = Settings().scorer_engine
    shown = by_engine.get(default) or next(iter(by_engine.values()))
    return _latency_result(
        bench.base,
        duration,
        runs,
        shown["rates"],
        shown["scorer_peak_rss_mb"],
        default,
        by_engine,
    )


def _latency_of(
    bench: Bench,
    world: World,
    engine: str,
    duration: float,
    runs: int,
    hops: dict[int, list[dict[str, float]]],
) -> tuple[dict[str, Any], float | None]:
    """Each rate's runs, each on a fresh :class:`PacedScorer`; the scorers' peak RSS."""
    rates: dict[str, Any] = {}
    rss: list[float] = []
    for rate in RATES:
        per_run: list[dict[str, float]] = []
        for r in range(runs):
            s = bench.run_settings("lat", scorer_engine=engine)
            scorer = PacedScorer(bench, world, s, f"latency-scorer-{engine}-{rate}-{r}")
            try:
                # Drain: above capacity a backlog builds; it must not go unmeasured.
                run = scorer.wait().paced(world, rate, duration, f"lat{rate}-{r}", drain_s=90.0)
                peak = scorer.proc.peak_rss_mb()
            finally:
                scorer.close()
            if peak is not None:
                rss.append(peak)
            lat = [(run.received[e] - t) * 1000 for e, t in run.sent.items() if e in run.received]
            per_run.append(
                {
                    "p50": percentile(lat, 50),
                    "p95": percentile(lat, 95),
                    "p99": percentile(lat, 99),
                    "max": max(lat, default=0),
                    "lost": len(run.sent) - len(lat),
                    "achieved_rate": len(run.sent) / duration,
                }
            )
            log.info("latency engine=%s rate=%d run=%d %s", engine, rate, r, per_run[-1])
        rates[str(rate)] = {
            f"{q}_ms": summary([p[q] for p in per_run]) for q in ("p50", "p95", "p99", "max")
        } | {
            "unanswered": [p["lost"] for p in per_run],
            "n_per_run": int(rate * duration),
            "broker_one_hop": {
                f"{q}_ms": summary([h[q] for h in hops[rate]]) for q in ("p50", "p95", "p99")
            },
        }
    return rates, max(rss, default=None)


def _latency_result(
    s: Settings,
    duration: float,
    runs: int,
    rates: dict[str, Any],
    rss: float | None,
    default: str,
    by_engine: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    p99 = rates[str(RATES[0])]["p99_ms"]["median"]
    return {
        "duration_s": duration,
        "runs": runs,
        "rates": rates,
        "scorer_peak_rss_mb": rss,
        "engine": default,
        "engines": by_engine,
        "tuning": {
            "scorer take_events batch_size": s.batch_size,
            "within (batch_wait_s)": f"{s.batch_wait_s} s",
            "scorer producer_linger": "2 ms",
            "scorer fetch_max_wait_ms (STREAMREC_FETCH_MAX_WAIT_MS)": s.fetch_wait_ms,
            "scorer fetch_min_bytes": 1,
            "bench producer linger.ms": PRODUCER_LINGER_MS,
            "bench reader fetch.wait.max.ms": READER_FETCH_WAIT_MS,
            "partitions": s.partitions,
        },
        "notes": [
            "latency = wall time the recommendation reached the bench's reader minus wall "
            "time of the produce() call of its page view (same process, same clock); it "
            "includes the bench producer's linger and the reader's fetch",
            "broker_one_hop = the same producer and reader settings through the broker "
            "alone (produce -> consume, no scorer), as many records on a fresh topic as a "
            "scorer run, measured in the same session; the pipeline makes two such hops "
            "(page-views, recommendations)",
        ],
        "targets": [target(p99, 50.0, False, f"p99 <= 50 ms at {RATES[0]:,} ev/s")],
    }


def _freshness(run: PacedRun, metas: list[Any], topic: str) -> list[float]:
    """Seconds from each event's produce() to the first recommendation stamped with a
    version (or a later one) whose snapshot offsets include the event."""
    metas = sorted(metas, key=lambda m: m.version)
    versions = [m.version for m in metas]
    served_from: dict[int, float] = {}  # version -> first time it or a later one was served
    first = float("inf")
    for v in reversed(versions):
        if v in run.versions:
            first = min(first, run.versions[v] / 1000.0)
        served_from[v] = first
    out = []
    for event_id, (partition, offset) in run.where.items():
        for m in metas:
            if m.offsets.get(topic, {}).get(partition, 0) > offset:
                at = served_from[m.version]
                if at != float("inf"):
                    out.append(at - run.sent[event_id])
                break
    return out


def bench_freshness(
    bench: Bench,
    world: World,
    duration: float,
    runs: int,
    rate: float = 1_000,
    snapshot_interval: float = 0.5,
) -> dict[str, Any]:
    s = bench.run_settings("fresh", snapshot_interval=snapshot_interval, snapshot_keep=1_000)
    ensure_topics(s)
    # The trainer resumes from a trained model (origin "trainer", no offsets yet), so the
    # snapshots it publishes are of realistic size.
    version = publish(s, world.model, origin="trainer")  # type: ignore[arg-type]
    env = child_env(s)
    trainer = ChildProcess.streamrec(["trainer"], env, bench.logs / "fresh-trainer.log")
    scorer = ChildProcess.streamrec(["scorer"], env, bench.logs / "fresh-scorer.log")
    tail = TopicTail(s, s.topic_recommendations, READER_FETCH_WAIT_MS)
    per_run: list[dict[str, float]] = []
    try:
        producer = paced_producer(s)
        _wait_serving(s, producer, scorer, tail, version)
        for r in range(runs):
            rows = [world.score[i % len(world.score)] for i in range(int(rate * duration))]
            run = PacedRun(s, producer, tail, rate)
            run.run(_events(rows, f"fresh-{r}"), drain_s=4.0)
            # A version is only seen served on a recommendation: keep a trickle of page
            # views going until the last events of the run are covered (or 15 s pass).
            deadline = time.monotonic() + 15.0
            while True:
                metas = store_for(s).list_versions()
                fresh = _freshness(run, metas, s.topic_page_views)
                if len(fresh) >= len(run.sent) or time.monotonic() > deadline:
                    break
                trickle = PacedRun(s, producer, tail, 100)
                trickle.run(_events([("u0", "p1", 0, "s")] * 20, f"trickle-{r}"), drain_s=1.0)
                for v, at in trickle.versions.items():
                    run.versions[v] = min(at, run.versions.get(v, at))
            per_run.append(
                {
                    "p50": percentile(fresh, 50),
                    "p99": percentile(fresh, 99),
                    "covered": len(fresh) / max(1, len(run.sent)),
                }
            )
            log.info("freshness run=%d %s", r, per_run[-1])
        trainer.check()
        scorer.check()
    finally:
        tail.close()
        scorer.stop()
        trainer.stop()
    p99 = summary([p["p99"] for p in per_run], 3)
    return {
        "snapshot_interval_s": s.snapshot_interval,
        "model_poll_interval_s": s.model_poll_interval,
        "offered_rate": rate,
        "duration_s": duration,
        "runs": runs,
        "p50_s": summary([p["p50"] for p in per_run], 3),
        "p99_s": p99,
        "covered_share": [round(p["covered"], 4) for p in per_run],
        "notes": [
            "an event counts as served once the scorer stamps a recommendation with the "
            "first snapshot whose offsets pass the event's offset, or any later snapshot; "
            "events not yet covered when a run ends are left out (covered_share)",
            "the scorer swaps on the store's pub/sub hint, with a poll every "
            f"{s.model_poll_interval} s as the fallback",
        ],
        "targets": [target(p99["median"], 1.0, False, "freshness p99 <= 1 s")],
    }
