"""One master of a 3-master Redis Cluster goes away for ~10 s while page views flow —
the one holding the model's snapshots, lease and serving keys — then comes back EMPTY
(nothing is persisted): scorers and the trainer ride it out, as on a single server
(tests/reliability/test_redis_outage.py). Its own cluster: it kills a node."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from streams.io.topics import ensure_topics
from streams.services.processes import ChildProcess, wait_for
from streams.settings import Settings
from streams.state.keys import ModelKeys
from streams.state.snapshot_store import SnapshotStore
from tests.support.fixtures import TEST_SNAPSHOT_KEY
from tests.support.outages import Traffic, env_for, replace, stopping, summary
from tests.support.redis_cluster import ClusterNode, RedisClusterServers
from tests.support.redis_recovery import recover_and_drain
from tests.support.scorer import http_json, http_text, metric_value, wait_assigned

pytestmark = pytest.mark.redis_cluster

OUTAGE_S = 10.0


def off(cluster: RedisClusterServers, master: ClusterNode, s: Settings) -> str:
    """The history key of a user of the traffic whose slot another master owns."""
    keys = ModelKeys(s.model_name, cluster=True)
    users = (keys.history(f"u{i}") for i in range(10))
    return next(key for key in users if cluster.node_of(key) is not master)


def test_one_master_down_and_back_scorer_degrades_and_trainer_republishes(
    settings: Settings,
    settings_env: dict[str, str],
    tmp_path: Path,
    redis_cluster: RedisClusterServers,
) -> None:
    s = replace(settings, redis_url=redis_cluster.address, redis_cluster=True)
    env = env_for(
        s,
        settings_env,
        STREAMREC_REDIS_CLUSTER="1",
        STREAMREC_TRAINER_LEASE_TTL="3s",
        STREAMREC_SNAPSHOT_INTERVAL="500ms",
        STREAMREC_MODEL="covisit",
    )
    ensure_topics(s)
    store = SnapshotStore(s.redis_client(), s.model_name, TEST_SNAPSHOT_KEY.encode())
    # The master that holds the model's keys (all of them: one slot), not a user's.
    master = redis_cluster.node_of(ModelKeys(s.model_name, cluster=True).current)
    survivor_key = off(redis_cluster, master, s)
    survivor = redis_cluster.node_of(survivor_key)
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
        last_version = store.current_version()
        master.stop()  # SIGKILL: its slots have no owner until it is back
        outage_started = time.monotonic()
        sent_before_outage = len(traffic.event_ids)
        time.sleep(OUTAGE_S / 2)
        rest_status = http_json(f"{base}/recommendations/u1?k=3", timeout=5)[0]
        # A process starting now finds the cluster through the next node REDIS_URL names.
        both = f"redis://127.0.0.1:{master.port},127.0.0.1:{survivor.port}"
        late = replace(s, redis_url=both).redis_client()
        late_answered = late.ping() and late.llen(survivor_key) > 0
        time.sleep(OUTAGE_S / 2)
        sent_during_outage = set(traffic.event_ids[sent_before_outage:])
        errors_during = metric_value(http_text(f"{base}/metrics"), "streamrec_redis_errors_total")
        alive_during = scorer.alive() and trainer.alive()
        outage = time.monotonic() - outage_started
        survivor_answered = survivor.client().ping()

        master.start()  # same port and node id (nodes.conf), no data
        redis_cluster.wait_ok()
        recovered_at = time.monotonic()
        r = recover_and_drain(
            s, store, traffic, scorer, trainer, served_version, history, recovered_at
        )
    meta = store.read_meta(store.current_version())  # type: ignore[arg-type]
    summary(
        "redis_cluster_master_outage",
        events_in=r.produced,
        outage_s=round(outage, 1),
        recommendations_out=len(r.answers.recommendations),
        duplicates=r.answers.duplicates,
        lost=len(r.answers.lost),
        answered_during_outage=len(sent_during_outage & set(r.answers.ids)),
        redis_errors=int(metric_value(r.metrics, "streamrec_redis_errors_total")),
        trainer_republished_after_s=round(r.republish_s, 1),
        final_events_seen=meta.events_seen,
        version_before=last_version,
        version_after=meta.version,
    )
    assert alive_during and survivor_answered and late_answered
    assert rest_status == 200
    assert errors_during > 0
    assert not r.answers.lost and sent_during_outage <= set(r.answers.ids)
    assert r.alive and r.republished is not None
    assert last_version is not None and r.republished > last_version
    # Nothing the trainer learned was lost with the master: the republished model holds it.
    assert meta.events_seen == r.produced, (meta.events_seen, r.produced)
