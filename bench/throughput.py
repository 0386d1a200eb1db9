"""Scorer throughput, one worker: ours on each engine (Faust, kafka) against a naive
Faust agent, the bare Faust ceiling and a plain confluent-kafka loop.

The events are produced before the consumer starts. Each variant runs as its own
process with a fresh consumer group and output topic; throughput is
``(n - 1) / (t_last - t_first)`` over the broker timestamps of the outputs, so process
start and the group join (about half the session timeout on Tansu) are not counted.
Before each run the Redis histories of the scored users are reset to their last pages in
the training events, so every variant does exactly the same work. Rounds interleave the
variants (ours, naive, ceiling, plain, ours, ...), and ratios are taken within a round.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any

from streams.io.topics import ensure_topics
from streams.services.processes import ChildProcess
from streams.settings import Settings

from .harness import Bench, TopicTail, child_env, encode_rows, produce_all
from .harness import seed_histories as reset_histories
from .report import paired_ratio, summary, target
from .world import World, publish

log = logging.getLogger(__name__)

VARIANTS = ("ours", "ours-kafka", "naive", "ceiling", "plain")
#: The scorer engine each ``streamrec scorer`` variant runs.
ENGINES = {"ours": "faust", "ours-kafka": "kafka"}
DESCRIPTION = {
    "ours": "python -m streams.cli scorer --engine faust: Faust agent, take_events(batch_size, "
    "within), ScorerRuntime.process (pipelined Redis read/write per batch, acks awaited per "
    "batch)",
    "ours-kafka": "python -m streams.cli scorer --engine kafka: confluent-kafka consumer "
    "thread, consume(batch_size, within) -> the same ScorerRuntime.process on an asyncio "
    "loop, acks awaited per batch before the offsets are stored",
    "naive": "Faust agent, one event at a time: same ScoringCore and AsyncHistoryStore, "
    "Redis read + write per event, await topic.send",
    "ceiling": "bare Faust agent: stream.take(batch_size, within) + send_soon, no work",
    "plain": "confluent-kafka consume(batch_size) -> ScoringCore -> produce, sync "
    "HistoryStore, flush per batch before commit",
}


#: bench.agents is imported from the checkout, not the installed package.
REPO_ROOT = Path(__file__).resolve().parent.parent


def _argv(variant: str) -> list[str]:
    if variant in ENGINES:
        return [sys.executable, "-m", "streams.cli", "scorer", "--engine", ENGINES[variant]]
    return [sys.executable, "-m", "bench.agents", variant]


def run_variant(
    bench: Bench, base: Settings, variant: str, n: int, histories: dict, timeout: float
) -> dict[str, Any]:
    """One run: reset histories, start the variant, time its n outputs."""
    s = bench.run_settings(
        f"tp-{variant}", topic_page_views=base.topic_page_views, model_name=base.model_name
    )
    reset_histories(s, histories)
    ensure_topics(s)
    tail = TopicTail(s, s.topic_recommendations)
    child = ChildProcess(
        _argv(variant), child_env(s), bench.logs / f"{variant}.log", name=variant, cwd=REPO_ROOT
    )
    stamps: list[int] = []
    deadline = time.monotonic() + timeout
    try:
        while len(stamps) < n and time.monotonic() < deadline:
            for msg in tail.poll(0.2):
                stamps.append(msg.timestamp()[1])
            child.check()
        rss = child.peak_rss_mb()
    finally:
        tail.close()
        child.stop()
    if len(stamps) < n:
        log.warning("variant=%s got %d of %d outputs in %.0f s", variant, len(stamps), n, timeout)
        return {"events_per_s": None, "outputs": len(stamps), "peak_rss_mb": rss}
    stamps.sort()
    span = (stamps[n - 1] - stamps[0]) / 1000.0
    rate = (n - 1) / span if span > 0 else None
    log.info("throughput variant=%s events/s=%.0f span_s=%.2f", variant, rate or 0, span)
    return {"events_per_s": rate, "outputs": len(stamps), "span_s": span, "peak_rss_mb": rss}


def bench_scorer_throughput(bench: Bench, world: World, rounds: int) -> dict[str, Any]:
    base = bench.run_settings("tp")
    ensure_topics(base)
    version = publish(base, world.model)  # type: ignore[arg-type]
    events = encode_rows(world.score, "tp")
    produce_all(base, base.topic_page_views, events)
    n = len(events)
    histories = world.start_histories(base.history_length)
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
    for r in range(rounds):
        for variant in VARIANTS:
            timeout = 60 + n / 300
            runs[variant].append(run_variant(bench, base, variant, n, histories, timeout))
            log.info("round=%d variant=%s done", r, variant)
    rate = {v: [run["events_per_s"] for run in runs[v]] for v in VARIANTS}
    ratios = {
        "ours_over_naive": paired_ratio(rate["ours"], rate["naive"]),
        "ours_over_ceiling": paired_ratio(rate["ours"], rate["ceiling"]),
        "plain_over_ours": paired_ratio(rate["plain"], rate["ours"]),
        "ours_kafka_over_plain": paired_ratio(rate["ours-kafka"], rate["plain"]),
        "ours_kafka_over_ours": paired_ratio(rate["ours-kafka"], rate["ours"]),
    }
    return {
        "n_events": n,
        "k": base.k,
        "partitions": base.partitions,
        "batch_size": base.batch_size,
        "batch_wait_s": base.batch_wait_s,
        "snapshot_version": version,
        "users_with_history": sum(1 for h in histories.values() if h),
        "rounds": rounds,
        "variants": {
            v: {
                "description": DESCRIPTION[v],
                "events_per_s": summary(rate[v], 0),
                "peak_rss_mb": summary([r["peak_rss_mb"] for r in runs[v]]),
                "runs": runs[v],
            }
            for v in VARIANTS
        },
        "ratios": ratios,
        "targets": [
            target(ratios["ours_over_naive"]["median"], 2.0, True, "scorer >= 2x naive Faust"),
            target(
                ratios["ours_over_ceiling"]["median"],
                0.8,
                True,
                "scorer >= 80% of bare Faust ceiling",
            ),
            target(
                ratios["ours_kafka_over_plain"]["median"],
                0.8,
                True,
                "kafka-engine scorer >= 80% of the plain confluent-kafka loop",
            ),
        ],
    }
