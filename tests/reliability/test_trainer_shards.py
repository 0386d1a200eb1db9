"""Trainer shards (streams/trainer/shards.py): two processes share the page-view
partitions of one model; the one that merges is SIGKILLed while page views flow and
comes back. Each partition's state travels with its offsets, so at the end the merged
model counts every produced page view exactly once, page by page."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from streams.io.topics import ensure_topics
from streams.services.processes import ChildProcess, wait_for
from streams.settings import Settings
from streams.state.lease import TrainerLease
from streams.state.snapshot_store import SnapshotStore
from streams.trainer.merger import partition_namespace
from tests.support.fixtures import TEST_SNAPSHOT_KEY
from tests.support.outages import Traffic, env_for, kill_all, replace, summary
from tests.support.redis_cluster import RedisClusterServers

pytestmark = pytest.mark.trainer_shards

#: Counts without decay, so the merged model's counts can be compared page by page.
NO_DECAY = ["--param", "half_life=0", "--param", "pop_half_life=0"]


def _shard(env: dict[str, str], spec: str, log: Path) -> ChildProcess:
    return ChildProcess.streamrec(
        ["--log-level", "info", "trainer", "--shard", spec, *NO_DECAY], env, log
    )


def _shards_env(settings: Settings, settings_env: dict[str, str]) -> dict[str, str]:
    """The topic made, and the environment of shards that publish and hand over fast."""
    ensure_topics(settings, [settings.topic_page_views])
    return {
        **settings_env,
        "STREAMREC_SNAPSHOT_INTERVAL": "300ms",
        "STREAMREC_MODEL": "covisit",
        "STREAMREC_TRAINER_LEASE_TTL": "2s",
    }


def _merged_counts(
    store: SnapshotStore, traffic: Traffic, produced: int
) -> tuple[Any, dict[str, int], dict[str, int]]:
    """The merged snapshot, its views per page, and the views per page produced."""
    final = store.load(store.current_version())  # type: ignore[arg-type]
    pop = final.model._popularity  # type: ignore[attr-defined]
    learned = {page: round(count) for page, count in pop._counts.items()}
    return final, learned, dict(Counter(traffic.view(i)["page_id"] for i in range(produced)))


def _wait_merged(store: SnapshotStore, produced: int) -> None:
    wait_for(
        lambda: (
            (v := store.current_version()) is not None
            and store.read_meta(v).events_seen == produced
        ),
        40,
        "the merge to count every page view",
    )


def _lease_holder(settings: Settings, procs: list[ChildProcess]) -> ChildProcess | None:
    holder = TrainerLease(settings.redis_client(), settings.model_name).holder() or ""
    return next((p for p in procs if f":{p.pid}:" in holder), None)


def test_a_sigkilled_shard_resumes_its_partitions_and_every_event_is_learned_once(
    settings: Settings, settings_env: dict[str, str], tmp_path: Path
) -> None:
    env = _shards_env(settings, settings_env)
    key = TEST_SNAPSHOT_KEY.encode()
    client = settings.redis_client()
    store = SnapshotStore(client, settings.model_name, key)
    traffic = Traffic(settings, rate=150.0).start()
    procs = [_shard(env, f"{i}/2", tmp_path / f"shard-{i}.log") for i in range(2)]
    try:
        wait_for(
            lambda: (
                (v := store.current_version()) is not None
                and len(store.read_meta(v).extra.get("partitions", {})) == settings.partitions
            ),
            30,
            "a merge of every partition",
        )
        victim = _lease_holder(settings, procs)
        assert victim is not None, [p.output()[-2000:] for p in procs]
        time.sleep(0.5)
        victim.popen.send_signal(signal.SIGKILL)
        assert victim.popen.wait(5) == -signal.SIGKILL
        victim.stop()
        index = procs.index(victim)
        killed_at = store.current_version()
        time.sleep(1.0)  # page views the dead shard's partitions wait for
        procs.append(_shard(env, f"{index}/2", tmp_path / f"shard-{index}-again.log"))
        produced = traffic.stop()
        _wait_merged(store, produced)
        # Operators see the shards as the model's trainer (the merger's summed record).
        status = subprocess.run(
            [sys.executable, "-m", "streams.cli", "models", "status"],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        codes = [p.stop(signal.SIGTERM) for p in procs if p.alive()]
    finally:
        kill_all(procs)
    final, learned, want = _merged_counts(store, traffic, produced)
    resumed = [
        SnapshotStore(client, partition_namespace(settings.model_name, p), key).newest_version_hint(
            "trainer"
        )
        for p in range(settings.partitions)
    ]
    summary(
        "trainer_shards_kill",
        events_in=produced,
        learned=final.model.n_events_learned,
        events_seen=final.meta.events_seen,
        merged_versions=final.meta.version,
        killed_at_version=killed_at,
        partition_versions=resumed,
        exit_codes=codes,
    )
    assert codes == [0, 0]
    assert status.returncode == 0 and "learning" in status.stdout, status.stdout + status.stderr
    assert final.model.n_events_learned == final.meta.events_seen == produced
    # Page by page: no page view counted twice or missed, whichever partition it was in.
    assert learned == want
    assert sum(final.meta.offsets[settings.topic_page_views].values()) >= produced
    assert "trainer resumed" in procs[-1].output()


def test_shards_joining_and_leaving_hand_their_partitions_over_without_loss_or_repeat(
    settings: Settings, settings_env: dict[str, str], tmp_path: Path
) -> None:
    """``--shard auto``: a second shard joins a running one and takes some partitions;
    then the first leaves (SIGTERM) and the second takes them all. Each hand-over is a
    last snapshot of the partition, then its lease released and taken."""
    env = _shards_env(settings, settings_env)
    key = TEST_SNAPSHOT_KEY.encode()
    client = settings.redis_client()
    store = SnapshotStore(client, settings.model_name, key)
    parts = [
        SnapshotStore(client, partition_namespace(settings.model_name, p), key)
        for p in range(settings.partitions)
    ]

    traffic = Traffic(settings, rate=150.0).start()
    first = _shard(env, "auto", tmp_path / "first.log")
    procs = [first]
    try:
        wait_for(
            lambda: all(s.current_version() is not None for s in parts),
            30,
            "the first shard learning every partition",
        )
        second = _shard(env, "auto", tmp_path / "second.log")
        procs.append(second)
        wait_for(
            lambda: (
                "trainer shard takes partition" in second.output()
                and "trainer resumed" in second.output()
            ),
            30,
            "the second shard taking over a partition",
        )
        took_on_join = second.output().count("trainer shard takes partition")
        assert first.stop(signal.SIGTERM) == 0
        wait_for(
            lambda: second.output().count("trainer shard takes partition") == settings.partitions,
            30,
            "the second shard taking every partition",
        )
        produced = traffic.stop()
        _wait_merged(store, produced)
        code = second.stop(signal.SIGTERM)
    finally:
        kill_all(procs)
    final, learned, want = _merged_counts(store, traffic, produced)
    summary(
        "trainer_shards_join_leave",
        events_in=produced,
        learned=final.model.n_events_learned,
        events_seen=final.meta.events_seen,
        partitions_taken_on_join=took_on_join,
        merged_versions=final.meta.version,
        exit_code=code,
    )
    assert code == 0
    assert 1 <= took_on_join < settings.partitions
    assert "trainer shard gives up partition" in first.output()
    assert final.model.n_events_learned == final.meta.events_seen == produced
    assert learned == want


@pytest.mark.redis_cluster
def test_auto_shards_on_a_redis_cluster_learn_every_event_once(
    settings: Settings,
    settings_env: dict[str, str],
    tmp_path: Path,
    redis_cluster: RedisClusterServers,
) -> None:
    """Two ``auto`` shards on a 3-master cluster: their membership set, the partitions'
    namespaces, leases and snapshots, and the merge share the model's hash tag; the
    merge counts every page view once, page by page."""
    s = replace(settings, redis_url=redis_cluster.address, redis_cluster=True)
    env = env_for(s, _shards_env(settings, settings_env), STREAMREC_REDIS_CLUSTER="1")
    store = SnapshotStore(s.redis_client(), s.model_name, TEST_SNAPSHOT_KEY.encode())
    traffic = Traffic(settings, rate=150.0).start()
    procs = [_shard(env, "auto", tmp_path / f"shard-{i}.log") for i in range(2)]
    try:
        wait_for(
            lambda: all("trainer shard takes partition" in p.output() for p in procs),
            40,
            "both shards learning partitions",
        )
        time.sleep(2.0)
        produced = traffic.stop()
        _wait_merged(store, produced)
        codes = [p.stop(signal.SIGTERM) for p in procs]
    finally:
        kill_all(procs)
    final, learned, want = _merged_counts(store, traffic, produced)
    summary(
        "trainer_shards_redis_cluster",
        events_in=produced,
        learned=final.model.n_events_learned,
        merged_versions=final.meta.version,
        exit_codes=codes,
    )
    assert codes == [0, 0]
    assert final.model.n_events_learned == final.meta.events_seen == produced
    assert learned == want
    for proc in procs:
        assert "CROSSSLOT" not in proc.output() and "same key slot" not in proc.output()
