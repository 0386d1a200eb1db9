"""Redis goes away for ~10 s while page views flow, then comes back EMPTY (like the
embedded Valkey, which persists nothing): scorers and the trainer ride it out."""

from __future__ import annotations

import time
from pathlib import Path

from streams.io.topics import ensure_topics
from streams.services.processes import ChildProcess, wait_for
from streams.settings import Settings
from streams.state.snapshot_store import SnapshotStore
from tests.support.fixtures import TEST_SNAPSHOT_KEY, on_every_engine
from tests.support.outages import PrivateServer, Traffic, env_for, replace, stopping, summary
from tests.support.redis_recovery import recover_and_drain
from tests.support.scorer import http_json, http_text, metric_value, wait_assigned

#: Scorer behaviour: checked on each scorer engine.
pytestmark = on_every_engine

OUTAGE_S = 10.0


def test_redis_outage_scorer_degrades_and_recovers_trainer_republishes(
    settings: Settings, settings_env: dict[str, str], tmp_path: Path, private_redis: PrivateServer
) -> None:
    s = replace(settings, redis_url=private_redis.address)
    env = env_for(
        s,
        settings_env,
        STREAMREC_TRAINER_LEASE_TTL="3s",
        STREAMREC_SNAPSHOT_INTERVAL="500ms",
        STREAMREC_MODEL="covisit",
    )
    ensure_topics(s)
    store = SnapshotStore(s.redis_client(), s.model_name, TEST_SNAPSHOT_KEY.encode())
    base = f"http://127.0.0.1:{s.web_port}"
    trainer = ChildProcess.streamrec(
        ["--log-level", "info", "trainer"], env, tmp_path / "trainer.log"
    )
    scorer = ChildProcess.streamrec(["scorer"], env, tmp_path / "scorer.log")
    traffic = Traffic(s, rate=100.0, users=10)

    def served_version() -> int:
        return int(http_json(f"{base}/healthz")[1]["model_version"])

    def history(user: str = "u1") -> int:
        return int(http_json(f"{base}/recommendations/{user}?k=3")[1]["history_length"])

    with stopping(trainer, scorer):
        wait_assigned(s, scorer)
        traffic.start()
        wait_for(lambda: served_version() > 0 and history() > 2, 30, "a trained model and history")
        before = {"version": served_version(), "history": history()}

        last_version = store.current_version()
        private_redis.stop()  # SIGKILL: connections die, the port refuses
        outage_started = time.monotonic()
        sent_before_outage = len(traffic.event_ids)
        during: dict[str, object] = {}
        time.sleep(OUTAGE_S / 2)
        status, body = http_json(f"{base}/recommendations/u1?k=3")
        during["rest"] = (status, body.get("history_available"), len(body.get("items", [])))
        during["health"] = http_json(f"{base}/healthz")[1]["status"]
        time.sleep(OUTAGE_S / 2 - (time.monotonic() - outage_started - OUTAGE_S / 2))
        sent_during_outage = set(traffic.event_ids[sent_before_outage:])
        errors_during = metric_value(http_text(f"{base}/metrics"), "streamrec_redis_errors_total")
        during["scorer_alive"], during["trainer_alive"] = scorer.alive(), trainer.alive()
        outage = time.monotonic() - outage_started

        private_redis.start()  # same port, no data: histories and snapshots are gone
        recovered_at = time.monotonic()
        wait_for(lambda: history() > 0, 20, "histories written again")
        history_recovery_s = time.monotonic() - recovered_at
        r = recover_and_drain(
            s, store, traffic, scorer, trainer, served_version, history, recovered_at
        )
    meta = store.read_meta(store.current_version())  # type: ignore[arg-type]
    summary(
        "redis_outage",
        events_in=r.produced,
        outage_s=round(outage, 1),
        recommendations_out=len(r.answers.recommendations),
        duplicates=r.answers.duplicates,
        lost=len(r.answers.lost),
        dlq=0,
        answered_during_outage=len(sent_during_outage & set(r.answers.ids)),
        redis_errors=int(metric_value(r.metrics, "streamrec_redis_errors_total")),
        history_back_after_s=round(history_recovery_s, 1),
        trainer_republished_after_s=round(r.republish_s, 1),
        final_events_seen=meta.events_seen,
        version_before=last_version,
        version_after=meta.version,
    )
    print("before", before, "during", during)
    assert during["scorer_alive"] and during["trainer_alive"], during
    assert during["rest"][0] == 200 and during["rest"][1] is False and during["rest"][2] > 0
    assert errors_during > 0
    assert not r.answers.lost and sent_during_outage <= set(r.answers.ids)
    assert r.alive and r.republished is not None
    # Versions keep moving forward although the store forgot them.
    assert last_version is not None and r.republished > last_version
    # Nothing the trainer learned was lost with Redis: the republished model holds it all.
    assert meta.events_seen == r.produced, (meta.events_seen, r.produced)
