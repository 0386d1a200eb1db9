"""``streamrec retrain`` on a real local[2] Spark and the embedded broker."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from online_model.data.generate import generate, write_csv
from online_model.evaluation import PrequentialEvaluator
from online_model.models.covisit import Covisitation
from online_model.models.covisit.batch import OrderedEvents, build_covisitation
from online_model.models.popularity import DecayedPopularity
from streams.cli import main
from streams.io.producer import ReliableProducer, page_view
from streams.io.topics import ensure_topics
from streams.retrain import job
from streams.retrain.run import RetrainSpec, retrain_once
from streams.settings import Settings
from streams.time_range import TimeRange
from streams.wiring import snapshot_store
from tests.support.topics import produce_page_views
from tests.unit.test_covisit_batch import assert_same_top

pytestmark = pytest.mark.spark

ROOT = Path(__file__).resolve().parents[2]


def _views(n: int, base_ms: int, seed: int = 5) -> list[dict[str, Any]]:
    rows = generate(n_users=60, n_pages=40, n_events=n, seed=seed).rows()
    start = rows[0][2]
    return [
        page_view(u, p, base_ms + (t - start) // 1000, event_id=f"e{i}")
        for i, (u, p, t, _) in enumerate(rows)
    ]


BAD = {
    b"not avro": "bad_magic_byte",
    b"\x00": "too_short",
    b"\x00\x00\x00\x03\xe7garbage": "unknown_schema_id",
}


def _produce_with_bad_records(settings: Settings, views: list[dict[str, Any]]) -> None:
    ensure_topics(settings, [settings.topic_page_views], partitions=3)
    producer = ReliableProducer(settings)
    for i, value in enumerate(BAD):
        ts = views[len(views) // 2]["ts"] + i
        producer.produce(settings.topic_page_views, value, key=f"u{i}".encode(), timestamp_ms=ts)
    assert producer.flush().delivered == len(BAD)
    # Flushed in chunks: the driver cuts partitions where the broker's watermarks say, and
    # a broker may report only the base offset of a partition's last batch (the embedded
    # one does), so one big batch per partition would leave nothing to cut.
    for start in range(0, len(views), 50):
        produce_page_views(settings, views[start : start + 50], producer=producer)
    assert producer.report.delivered == len(views) + len(BAD)


def test_offset_ranges_read_every_record_once_and_count_bad_ones(
    spark: Any, settings: Settings
) -> None:
    base = int(time.time() * 1000) - 3_600_000
    views = _views(900, base)
    _produce_with_bad_records(settings, views)
    now = int(time.time() * 1000)

    # Small ranges: each partition is cut into several tasks, the last one open-ended. The
    # clock is past --to: the open-ended ranges end at the end of the log, not after a
    # minute of silence.
    started = time.monotonic()
    read = job.read_kafka(
        spark, settings, settings.topic_page_views, TimeRange(None, now), 60.0, 0.0, 120
    )
    assert time.monotonic() - started < 30
    assert read.source["stopped"] == {str(p): ["end_of_log"] for p in range(3)}
    assert read.source["tasks"] > 3 * 2
    assert read.bad_by_reason == dict.fromkeys(BAD.values(), 1)
    got = read.events.rows()
    assert sorted(got) == sorted((v["user_id"], v["page_id"], v["ts"]) for v in views)
    assert [ts for *_, ts in got] == sorted(v["ts"] for v in views)  # learning order
    per_partition = read.source["records_per_partition"]
    assert sum(per_partition.values()) == len(views) + len(BAD)
    # Offsets covered: next offset after the last record of each partition.
    assert read.offsets == {
        settings.topic_page_views: {int(p): n for p, n in per_partition.items()}
    }

    # --to in the middle: partitions stop at their first record past it, whatever task.
    cut = views[600]["ts"]
    read = job.read_kafka(
        spark, settings, settings.topic_page_views, TimeRange(None, cut), 1.0, 0.0, 120
    )
    assert read.n_events == sum(1 for v in views if v["ts"] < cut)
    assert "passed_to" in {s for stops in read.source["stopped"].values() for s in stops}

    # --to still ahead: a record stamped before it may yet come, so silence ends the read.
    ahead = TimeRange(None, int(time.time() * 1000) + 60_000)
    read = job.read_kafka(spark, settings, settings.topic_page_views, ahead, 0.5, 0.0, 120)
    assert read.n_events == len(views)
    assert read.source["stopped"] == {str(p): ["idle"] for p in range(3)}


def _pyspark_file(_: int) -> str:
    import pyspark

    return str(pyspark.__file__)


def test_local_workers_import_the_installed_pyspark_not_its_zip(spark: Any) -> None:
    # From the zip Spark puts first on a worker's path, every run would compile PySpark's
    # sources again before its first task.
    files = spark.parallelize(range(2), 2).map(_pyspark_file).collect()
    assert files and not any(".zip" in f for f in files), files


def _online(events: list[tuple[str, str, int]], params: dict[str, Any]) -> Covisitation:
    model = Covisitation(**params)
    for user, page, ts in events:
        model.learn_one(user, page, x={"ts": ts})
    return model


@pytest.mark.parametrize(
    "params",
    [
        {"backoff_rate": 0.0, "half_life": 300, "pop_half_life": 4, "window": 3},
        {"backoff_rate": 0.0, "unit": "seconds", "half_life": 86_400.0, "pop_half_life": 3_600},
    ],
)
def test_spark_statistics_give_the_online_models_recommendations(
    spark: Any, params: dict[str, Any]
) -> None:
    rows = generate(n_users=80, n_pages=50, n_events=3_000, seed=11).rows()
    events = [(u, p, t) for u, p, t, _ in rows]
    stats = job.covisit_statistics(spark, OrderedEvents.from_rows(events), len(events), params)
    bulk, online = build_covisitation(params, stats), _online(events, params)
    histories = [[p for u2, p, _ in events if u2 == u][-5:] for u in {u for u, _, _ in events}]
    assert_same_top(online, bulk, histories[:50])


def test_retrain_of_a_file_equals_online_learning_and_its_tail_metrics(
    spark: Any, settings: Settings, tmp_path: Path
) -> None:
    views = generate(n_users=80, n_pages=50, n_events=2_500, seed=12)
    path = tmp_path / "views.csv"
    write_csv(views, path)
    with path.open("a") as fh:
        fh.write("u1,p1,not-a-time,s1\n")
    events = [(u, p, t) for u, p, t, _ in views.rows()]
    params = {"backoff_rate": "0"}
    spec = RetrainSpec(
        "covisit", params, TimeRange(), input_path=str(path), skip_bad=True, tail=400
    )
    outcome = retrain_once(spark, settings, spec)
    assert outcome.summary["bad_by_reason"] == {"bad_row": 1}
    assert outcome.summary["events"] == len(events)
    assert outcome.snapshot.meta.origin == "retrain"

    # The online model learning every event, scored on the same 400 newest events.
    online = Covisitation(backoff_rate=0.0)
    evaluator = PrequentialEvaluator(online, k=settings.k)
    for user, page, ts in events[:-400]:
        evaluator.update(user, page, ts)
    hits, scored = evaluator.quality.hits, evaluator.quality.judged
    for user, page, ts in events[-400:]:
        evaluator.update(user, page, ts)
    metrics = outcome.summary["metrics"]
    assert metrics["n_scored"] == evaluator.quality.judged - scored
    assert metrics["hit@10"] == pytest.approx(
        (evaluator.quality.hits - hits) / (evaluator.quality.judged - scored)
    )
    histories = [[p for u2, p, _ in events if u2 == u][-5:] for u in {u for u, _, _ in events}]
    assert_same_top(online, outcome.snapshot.model, histories[:40])

    # The gate: the same spec does not beat itself; a weaker current model is beaten.
    gated = dataclasses.replace(spec, gate="hit@10")
    same = retrain_once(spark, settings, gated, outcome.snapshot)
    assert same.verdict is not None and not same.verdict.passed
    assert same.verdict.current == pytest.approx(same.verdict.candidate)
    # A model that cannot learn in bulk learns the prefix online on the driver.
    weak = dataclasses.replace(outcome.snapshot, model=DecayedPopularity())
    beaten = retrain_once(spark, settings, gated, weak)
    assert beaten.verdict is not None and beaten.verdict.passed
    assert beaten.verdict.current is not None
    assert beaten.verdict.current < beaten.verdict.candidate


def test_spark_submit_of_the_entry_point_publishes_a_snapshot_a_scorer_loads(
    settings: Settings, settings_env: dict[str, str]
) -> None:
    """The documented cluster entry point, for real: ``spark-submit streams/retrain/submit.py``
    (the master comes from spark-submit) runs ``streamrec retrain`` end to end."""
    import pyspark

    base = int(time.time() * 1000) - 3_600_000
    views = _views(600, base, seed=6)
    _produce_with_bad_records(settings, views)
    env = {**settings_env, "PYTHONPATH": str(ROOT), "STREAMREC_LOG_LEVEL": "warning"}
    env["PYSPARK_PYTHON"] = sys.executable
    submit = Path(pyspark.__file__).parent / "bin" / "spark-submit"
    proc = subprocess.run(
        [
            str(submit),
            "--master",
            "local[2]",
            str(ROOT / "streams" / "retrain" / "submit.py"),
            "--publish",
            "live",
            "--tail",
            "100",
            "--idle-timeout",
            "1s",
            "--records-per-task",
            "150",
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["events"] == len(views)
    assert out["bad_records"] == len(BAD)
    assert out["current"] is True and out["version"] >= 1
    snap = snapshot_store(settings).load_current()  # verifies the signature, allow-list
    assert snap is not None
    assert snap.meta.origin == "retrain"
    assert snap.meta.content_hash == out["content_hash"]
    offsets = snap.meta.offsets[settings.topic_page_views]
    assert sum(offsets.values()) == len(views) + len(BAD)
    assert {str(p): o for p, o in offsets.items()} == out["offsets"][settings.topic_page_views]
    assert snap.model.n_events_learned == len(views)
    history = [v["page_id"] for v in views if v["user_id"] == views[-1]["user_id"]][-5:]
    assert len(snap.model.recommend("someone", k=10, history=history)) == 10


def test_a_file_with_a_bad_row_is_refused_as_produce_refuses_it(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text("user_id,page_id,ts_ms\nu1,p1,5\nu2,p2,notatime\n")
    result = CliRunner().invoke(
        main,
        ["retrain", "--input", str(path), "--master", "local[1]"],
        env={"STREAMREC_INSECURE_DEV": "1"},
        catch_exceptions=False,
    )
    assert result.exit_code == 2, result.output
    assert f"error: {path} line 3: ts_ms 'notatime' is not a time" in result.stderr
    assert result.stdout == ""  # no summary: nothing was built


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "mf"], "cannot be retrained in bulk"),
        (["--every", "soon"], "--every soon: not a duration"),
        (["--every", "6"], "--every 6: give a unit, e.g. 6s, 6m or 6h"),
        (["--gate", "hit@3"], "is not a metric"),
        (["--gate", "hit@10", "--tail", "0"], "needs --tail > 0"),
        (["--model", "hybrid", "--gate", "hit@10"], "--gate judges whole models"),
        (["--model", "hybrid", "--publish", "candidate"], "published for the hybrid's"),
        (["--model", "hybrid", "--publish", "live"], "covers no offsets of the topic"),
    ],
)
def test_bad_options_are_refused_before_spark_starts(
    args: list[str], message: str, tmp_path: Path
) -> None:
    result = CliRunner().invoke(
        main,
        ["retrain", "--input", str(tmp_path / "x.csv"), *args],
        env={"STREAMREC_INSECURE_DEV": "1"},
        catch_exceptions=False,
    )
    assert result.exit_code == 2, result.output
    assert "error: " in result.stderr and message in result.stderr
