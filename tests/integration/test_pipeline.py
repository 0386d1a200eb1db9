"""The product end to end: trainer + Faust scorer against a real broker and Redis."""

from __future__ import annotations

import struct
import time
from pathlib import Path

from online_model.models.popularity import DecayedPopularity
from online_model.persist.snapshot import Snapshot, SnapshotMeta
from streams.io.codec import PAGE_VIEW, RECOMMENDATION, AvroCodec
from streams.io.producer import ReliableProducer, page_view
from streams.io.topics import ensure_topics
from streams.services.processes import ChildProcess, wait_for
from streams.settings import Settings
from streams.state.snapshot_store import SnapshotStore
from tests.support.fixtures import TEST_SNAPSHOT_KEY, on_every_engine
from tests.support.scorer import http_json, http_text, wait_ready
from tests.support.topics import TopicReader, produce_page_views

REC = AvroCodec.bundled(RECOMMENDATION)
PV = AvroCodec.bundled(PAGE_VIEW)


def views(n: int, start: int = 0, users: int = 40, pages: int = 60) -> list[dict]:
    now = int(time.time() * 1000)
    # users walk through pages in order, so co-visitation has something to learn
    return [
        page_view(f"u{i % users}", f"p{(i // users + i % 7) % pages}", now + i, event_id=f"ev-{i}")
        for i in range(start, start + n)
    ]


@on_every_engine
def test_every_page_view_answered_once_and_versions_advance(
    settings: Settings, settings_env: dict[str, str], tmp_path: Path
) -> None:
    ensure_topics(settings)
    trainer = ChildProcess.streamrec(["trainer"], settings_env, tmp_path / "trainer.log")
    scorer = ChildProcess.streamrec(["scorer"], settings_env, tmp_path / "scorer.log")
    reader = TopicReader(settings, settings.topic_recommendations, f"read-{settings.model_name}")
    produced: list[dict] = []
    try:
        wait_ready(settings, scorer)
        for wave in range(4):
            batch = views(300, start=wave * 300)
            assert produce_page_views(settings, batch).delivered == 300
            produced += batch
            time.sleep(2.5)  # > snapshot interval + poll interval: the model moves on
        wanted = {v["event_id"] for v in produced}
        reader.read_until(
            lambda ms: len({REC.decode(m.value())["event_id"] for m in ms}) >= len(wanted),
            timeout=90,
        )
        recs = [REC.decode(m.value()) for m in reader.messages]

        status, body = http_json(f"http://127.0.0.1:{settings.web_port}/recommendations/u3?k=5")

        # Both groups commit everything they processed: the console's lag table says so.
        def committed_all() -> bool:
            lag = http_json(f"http://127.0.0.1:{settings.web_port}/console/state")[1][
                "consumer_lag"
            ]
            done: dict[str, int] = {}
            for row in lag["partitions"]:
                done[row["role"]] = done.get(row["role"], 0) + (row["committed"] or 0)
            return done == {"scorer": 1200, "trainer": 1200} and set(lag["totals"].values()) == {0}

        wait_for(committed_all, 30, "scorer and trainer groups commit every page view")
        metrics = http_text(f"http://127.0.0.1:{settings.web_port}/metrics")
    finally:
        reader.close()
        assert scorer.stop() == 0, scorer.output()[-3000:]
        assert trainer.stop() == 0, trainer.output()[-3000:]

    ids = [r["event_id"] for r in recs]
    assert set(ids) == wanted, f"missing {len(wanted - set(ids))}"
    assert len(ids) == len(set(ids)), "duplicates in a clean run"
    by_id = {r["event_id"]: r for r in recs}
    first = [by_id[v["event_id"]]["model_version"] for v in produced[:300]]
    last = [by_id[v["event_id"]]["model_version"] for v in produced[-300:]]
    assert max(last) > 0 and max(last) > min(first), (first[:5], last[-5:])
    assert all(len(r["items"]) > 0 for r in recs[-300:])
    assert all(m.key() == REC.decode(m.value())["user_id"].encode() for m in reader.messages)

    assert status == 200 and body["user_id"] == "u3" and len(body["items"]) == 5
    assert body["history_length"] > 0 and body["model_version"] > 0
    assert "streamrec_events_scored_total 1200.0" in metrics
    lag = [line for line in metrics.splitlines() if line.startswith("streamrec_consumer_lag{")]
    assert len(lag) == 2 * settings.partitions  # scorer and trainer, every partition
    assert all(line.endswith(" 0.0") for line in lag), lag
    assert f'group="{settings.trainer_group}"' in lag[-1]


def test_malformed_messages_go_to_the_dlq_and_the_rest_is_scored(
    settings: Settings, settings_env: dict[str, str], tmp_path: Path
) -> None:
    ensure_topics(settings)
    scorer = ChildProcess.streamrec(["scorer"], settings_env, tmp_path / "scorer.log")
    good = views(20)
    sample = PV.encode(good[0])
    bad = {
        "empty": b"",
        "truncated": sample[: len(sample) - 4],
        "wrong_magic": b"\x09" + sample[1:],
        "unknown_schema": sample[:1] + struct.pack(">I", 12345) + sample[5:],
    }
    producer = ReliableProducer(settings)
    for i, view in enumerate(good):
        producer.produce(settings.topic_page_views, PV.encode(view), key=view["user_id"].encode())
        if i % 5 == 4:
            name = list(bad)[i // 5]
            producer.produce(settings.topic_page_views, bad[name], key=name.encode())
    assert producer.flush().delivered == 24
    dlq = TopicReader(settings, settings.topic_dlq, f"dlq-{settings.model_name}")
    recs = TopicReader(settings, settings.topic_recommendations, f"rec-{settings.model_name}")
    try:
        wait_ready(settings, scorer)
        dead = dlq.read_until(lambda ms: len(ms) >= 4, timeout=60)
        answered = recs.read_until(lambda ms: len(ms) >= 20, timeout=60)
        time.sleep(1)
        assert scorer.alive()
    finally:
        dlq.close()
        recs.close()
        assert scorer.stop() == 0, scorer.output()[-3000:]
    assert len(dead) == 4
    for msg in dead:
        headers = {k: v.decode() for k, v in msg.headers()}
        assert headers["streamrec.original.topic"] == settings.topic_page_views
        assert int(headers["streamrec.original.offset"]) >= 0
        assert headers["streamrec.error.class"] and headers["streamrec.error.message"]
        assert msg.value() == bad[msg.key().decode()]
    reasons = sorted(dict(m.headers())["streamrec.error.reason"].decode() for m in dead)
    assert reasons == ["bad_magic_byte", "corrupt_body", "too_short", "unknown_schema_id"]
    assert {REC.decode(m.value())["event_id"] for m in answered} == {v["event_id"] for v in good}


def _snapshot(pages: list[str]) -> Snapshot:
    model = DecayedPopularity()
    for page in pages:
        model.learn_one("someone", page)
    meta = SnapshotMeta(
        model_name="x",
        version=0,
        created_at=time.time(),
        events_seen=len(pages),
        origin="test",
        model_class="online_model.popularity.DecayedPopularity",
        offsets={},
        metrics={},
        content_hash="",
        extra={},
    )
    return Snapshot(meta=meta, model=model, trainer_state={})


def test_snapshot_with_wrong_mac_is_rejected_and_old_version_serves(
    settings: Settings, settings_env: dict[str, str], tmp_path: Path
) -> None:
    ensure_topics(settings)
    client = settings.redis_client()
    store = SnapshotStore(client, settings.model_name, TEST_SNAPSHOT_KEY.encode())
    forger = SnapshotStore(client, settings.model_name, b"not-the-key")
    good_version = store.publish(_snapshot(["alpha"] * 3 + ["beta"]))
    scorer = ChildProcess.streamrec(["scorer"], settings_env, tmp_path / "scorer.log")
    base = f"http://127.0.0.1:{settings.web_port}"
    try:
        wait_ready(settings, scorer)
        wait_for(
            lambda: http_json(f"{base}/healthz")[1]["model_version"] == good_version,
            30,
            "good snapshot served",
        )
        bad_version = forger.publish(_snapshot(["evil"] * 10))
        assert store.current_version() == bad_version
        wait_for(
            lambda: "streamrec_snapshots_rejected 1.0" in http_text(f"{base}/metrics"),
            30,
            "rejection counted",
        )
        status, body = http_json(f"{base}/recommendations/newcomer?k=2")
        produce_page_views(settings, views(5))
        recs = TopicReader(settings, settings.topic_recommendations, f"r-{settings.model_name}")
        answered = recs.read_until(lambda ms: len(ms) >= 5, timeout=60)
        recs.close()
    finally:
        assert scorer.stop() == 0, scorer.output()[-3000:]
    assert status == 200 and body["model_version"] == good_version
    assert [i["page_id"] for i in body["items"]] == ["alpha", "beta"]
    assert {REC.decode(m.value())["model_version"] for m in answered} == {good_version}
