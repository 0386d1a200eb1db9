"""``streamrec replay`` against a real broker and Redis: range, metrics, determinism, gate."""

from __future__ import annotations

import json
import time
from typing import Any

from click.testing import CliRunner, Result

from online_model.evaluation import evaluate
from online_model.registry import make_model
from streams.cli import main
from streams.io.producer import ReliableProducer, page_view
from streams.io.topics import ensure_topics
from streams.scorer.runtime import snapshot_store
from streams.settings import Settings
from tests.support.topics import produce_page_views

N_USERS = 30
N_PAGES = 40
STEP_MS = 100


def walk_views(n: int, base_ms: int) -> list[dict[str, Any]]:
    """Users walk pages in a fixed order (p3 -> p4 -> ...), so transitions are learnable
    and co-visitation beats popularity by a wide margin."""
    out = []
    for i in range(n):
        user = i % N_USERS
        step = i // N_USERS
        page = (user * 7 + step) % N_PAGES
        out.append(page_view(f"u{user}", f"p{page}", base_ms + i * STEP_MS, event_id=f"e{i}"))
    return out


def replay(settings_env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(
        main, ["replay", "--idle-timeout", "1.5s", *args], env=settings_env, catch_exceptions=False
    )


def out_json(result: Result) -> dict[str, Any]:
    return json.loads(result.stdout.strip().splitlines()[-1])


QUALITY = ("hit@10", "mrr@10", "coverage@10", "n_events", "n_scored")


def test_replay_of_a_sub_range_matches_local_evaluation_and_is_deterministic(
    settings: Settings, settings_env: dict[str, str]
) -> None:
    ensure_topics(settings, [settings.topic_page_views])
    base = int(time.time() * 1000) - 3_600_000
    views = walk_views(600, base)
    # An undecodable record in the range, written first: counted, not learned.
    producer = ReliableProducer(settings)
    producer.produce(
        settings.topic_page_views, b"not avro", key=b"u1", timestamp_ms=base + 250 * STEP_MS + 1
    )
    assert producer.flush().delivered == 1
    assert produce_page_views(settings, views).delivered == 600
    # Another one stamped in the range but written after the range ended in its partition
    # (a late event): only read with enough --lateness.
    producer.produce(
        settings.topic_page_views, b"not avro", key=b"u1", timestamp_ms=base + 260 * STEP_MS + 1
    )
    assert producer.flush().delivered == 2

    start, end = base + 100 * STEP_MS, base + 500 * STEP_MS
    args = ["--from", str(start), "--to", str(end), "--model", "covisit"]
    first = replay(settings_env, *args)
    assert first.exit_code == 0, first.output
    report = out_json(first)

    expected_views = [v for v in views if start <= v["ts"] < end]
    assert len(expected_views) == 400
    expected = evaluate(
        make_model("covisit"),
        [(v["user_id"], v["page_id"], v["ts"]) for v in expected_views],
        k=10,
        history_size=settings.history_length,
    )
    assert report["metrics"]["n_events"] == 400
    assert {m: report["metrics"][m] for m in QUALITY} == {m: expected[m] for m in QUALITY}
    assert expected["hit@10"] > 0.3  # the walk is learnable: the comparison means something
    summary = report["replay"]
    assert summary["records_in_range"] == 401 and summary["bad_records"] == 1
    assert summary["time_range"] == {"from_ms": start, "to_ms": end}
    assert summary["event_time"] == {"min_ms": start, "max_ms": end - STEP_MS}
    assert sorted(summary["partitions"]) == list(range(settings.partitions))
    assert report["version"] is None and report["publish"] == "none"
    assert snapshot_store(settings).current_version() is None  # --publish none stores nothing

    # Same range and spec again, this time stored as a candidate: the same model.
    second = replay(settings_env, *args, "--publish", "candidate")
    assert second.exit_code == 0, second.output
    stored = out_json(second)
    assert stored["content_hash"] == report["content_hash"]
    store = snapshot_store(settings)
    assert store.current_version() is None  # a candidate does not move current
    meta = store.read_meta(stored["version"])
    assert meta.origin == "replay" and meta.content_hash == report["content_hash"]
    extra = meta.extra["replay"]
    assert extra["topic"] == settings.topic_page_views
    assert extra["time_range"] == {"from_ms": start, "to_ms": end}
    assert sum(extra["records_per_partition"].values()) == 401
    for partition, (lo, hi) in extra["offset_ranges"].items():
        assert hi - lo + 1 >= extra["records_per_partition"][partition]
    assert meta.offsets == {
        settings.topic_page_views: {int(p): hi + 1 for p, (_, hi) in extra["offset_ranges"].items()}
    }
    assert extra["metrics"]["hit@10"] == expected["hit@10"]
    assert meta.events_seen == 400

    # With lateness covering the tail, the late record is read too (and only it).
    late = replay(settings_env, *args, "--lateness", "60s")
    assert late.exit_code == 0, late.output
    assert out_json(late)["replay"]["bad_records"] == 2
    assert out_json(late)["content_hash"] == report["content_hash"]

    # A different range is a different model.
    other = replay(
        settings_env, "--from", str(start), "--to", str(end - 50 * STEP_MS), "--model", "covisit"
    )
    assert other.exit_code == 0, other.output
    assert out_json(other)["metrics"]["n_events"] == 350
    assert out_json(other)["content_hash"] != report["content_hash"]


def test_gate_refuses_a_worse_model_and_promotes_a_better_one(
    settings: Settings, settings_env: dict[str, str]
) -> None:
    ensure_topics(settings, [settings.topic_page_views])
    base = int(time.time() * 1000) - 3_600_000
    assert produce_page_views(settings, walk_views(450, base)).delivered == 450
    rng = ["--from", str(base), "--to", str(base + 450 * STEP_MS)]
    store = snapshot_store(settings)

    # Current: co-visitation, promoted live.
    live = replay(settings_env, *rng, "--model", "covisit", "--publish", "live")
    assert live.exit_code == 0, live.output
    covisit_version = out_json(live)["version"]
    assert store.current_version() == covisit_version and store.is_pinned()

    # Popularity is worse on the same events: refused with exit 3, nothing published.
    worse = replay(
        settings_env, *rng, "--model", "popularity", "--publish", "live", "--gate", "hit@10"
    )
    assert worse.exit_code == 3, worse.output
    verdict = out_json(worse)["gate"]
    assert verdict["passed"] is False and verdict["current_version"] == covisit_version
    assert verdict["candidate"] < verdict["current"]
    assert "does not beat" in worse.stderr
    assert store.current_version() == covisit_version
    assert len(store.versions()) == 1

    # Current: popularity. Now co-visitation beats it and is promoted.
    pop = replay(settings_env, *rng, "--model", "popularity", "--publish", "live")
    assert pop.exit_code == 0, pop.output
    assert store.current_version() == out_json(pop)["version"]
    better = replay(
        settings_env, *rng, "--model", "covisit", "--publish", "live", "--gate", "hit@10"
    )
    assert better.exit_code == 0, better.output
    result = out_json(better)
    assert result["gate"]["passed"] is True
    assert result["gate"]["candidate"] > result["gate"]["current"]
    assert store.current_version() == result["version"] and result["current"] is True

    # A metric the evaluator does not report is refused before any reading.
    bad = replay(settings_env, *rng, "--gate", "ndcg@10")
    assert bad.exit_code == 2 and "not a metric" in bad.stderr
