"""streamrec on a 3-master Redis Cluster (docs/redis-cluster.md), under the ACL users of
docs/redis-acl.md in their cluster form: the pipeline end to end (page views in,
recommendations out, the trainer publishes, the scorer hot-swaps, an operator promotes
and follows) and an experiment up to the gate's decision."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import redis
from redis.cluster import RedisCluster

from online_model.errors import ConfigurationError
from online_model.models.itemitem import fit_item_item
from streams.experiment import results
from streams.experiment.assignment import CHALLENGER
from streams.io.topics import ensure_topics
from streams.lifecycle import model_actions
from streams.services.processes import ChildProcess, wait_for
from streams.settings import Settings
from streams.state.keys import ModelKeys
from streams.state.lease import TrainerLease
from streams.state.serving import Serving
from streams.state.snapshot_store import SnapshotStore
from streams.state.trainer_status import TrainerStatus
from streams.wiring import batch_layer_store, serving, store_for
from tests.reliability.test_redis_acl import (
    scorer_acl,
    shadow_round_trip,
    trainer_acl,
)
from tests.support.experiments import count_a_clear_win, follower_of, start_auto_experiment
from tests.support.fixtures import TEST_SNAPSHOT_KEY
from tests.support.outages import Traffic, env_for, replace, stopping, summary
from tests.support.redis_cluster import RedisClusterServers
from tests.support.scorer import http_json, http_text, metric_value, wait_assigned
from tests.support.snapshots import popularity_snapshot
from tests.support.topics import read_answers

pytestmark = pytest.mark.redis_cluster

#: What both users need on a cluster beyond a single server's rights: the cluster
#: client asks a node for the slot map and the command table when it connects.
CLUSTER_DISCOVERY = ("+cluster|slots", "+command")
#: Per-user keys keep their single-node names on a cluster (no hash tag).
USER_KEYS = ("hist:", "served:", "shadow:")


def on_cluster(rule: str, model: str) -> str:
    """One ACL rule of docs/redis-acl.md in the cluster layout: the model's (and its
    challengers') non-user key patterns take the family's hash tag.

    >>> on_cluster("%R~streamrec:m:current", "m"), on_cluster("~streamrec:m.x*:*", "m")
    ('%R~streamrec:{m}:current', '~streamrec:{m}.x*:*')
    >>> on_cluster("~streamrec:m:hist:*", "m"), on_cluster("&streamrec:m:published", "m")
    ('~streamrec:m:hist:*', '&streamrec:m:published')
    """
    head, sep, pattern = rule.partition("~")
    plain = f"streamrec:{model}"
    if not sep or not pattern.startswith(plain) or pattern[len(plain)] not in ":.":
        return rule
    if any(pattern.startswith(f"{plain}:{key}") for key in USER_KEYS):
        return rule
    return f"{head}~streamrec:{{{model}}}{pattern[len(plain) :]}"


def cluster_users(model: str) -> dict[str, list[str]]:
    return {
        name: [*(on_cluster(rule, model) for rule in acl), *CLUSTER_DISCOVERY]
        for name, acl in (
            ("scorer", scorer_acl(model, "scorer-secret")),
            ("trainer", trainer_acl(model, "trainer-secret")),
        )
    }


def set_users(cluster: RedisClusterServers, model: str) -> dict[str, str]:
    """The scorer and trainer users on every node (ACLs are per node); their URLs."""
    for node in cluster.nodes:
        for acl in cluster_users(model).values():
            node.client().execute_command("ACL", "SETUSER", *acl)
    port = cluster.nodes[0].port
    return {
        user: f"redis://{user}:{user}-secret@127.0.0.1:{port}" for user in ("scorer", "trainer")
    }


def keys_per_node(cluster: RedisClusterServers, pattern: str) -> list[int]:
    return [len(list(node.client().scan_iter(match=pattern, count=1000))) for node in cluster.nodes]


def test_the_pipeline_runs_on_a_cluster_under_its_acl_users(
    settings: Settings,
    settings_env: dict[str, str],
    tmp_path: Path,
    redis_cluster: RedisClusterServers,
) -> None:
    model = settings.model_name
    urls = set_users(redis_cluster, model)
    s_scorer = replace(settings, redis_url=urls["scorer"], redis_cluster=True)
    s_trainer = replace(settings, redis_url=urls["trainer"], redis_cluster=True)
    trainer_env = env_for(
        s_trainer,
        settings_env,
        STREAMREC_REDIS_CLUSTER="1",
        STREAMREC_MODEL="covisit",
        STREAMREC_SNAPSHOT_INTERVAL="500ms",
    )
    ensure_topics(settings)
    trainer = ChildProcess.streamrec(["trainer"], trainer_env, tmp_path / "trainer.log")
    scorer = ChildProcess.streamrec(
        ["scorer"],
        env_for(s_scorer, settings_env, STREAMREC_REDIS_CLUSTER="1"),
        tmp_path / "scorer.log",
    )
    store = SnapshotStore(s_trainer.redis_client(), model, TEST_SNAPSHOT_KEY.encode())
    base = f"http://127.0.0.1:{settings.web_port}"
    traffic = Traffic(settings, rate=150.0, users=60)

    def served() -> int:
        return int(http_json(f"{base}/healthz")[1]["model_version"])

    with stopping(trainer, scorer):
        wait_assigned(s_scorer, scorer)
        traffic.start()
        first = wait_for(served, 30, "the scorer serving the trainer's snapshot")
        wait_for(lambda: served() > first, 20, "a hot swap to a newer snapshot")
        # An operator (the trainer's user) promotes the first version, then follows again:
        # the serving switch script on the cluster.
        promote = ChildProcess.streamrec(
            ["models", "promote", str(first)], trainer_env, tmp_path / "promote.log"
        )
        assert promote.wait(30) == 0, promote.output()[-2000:]
        wait_for(lambda: served() == first, 20, "the scorer serving the promoted version")
        follow = ChildProcess.streamrec(["models", "follow"], trainer_env, tmp_path / "follow.log")
        assert follow.wait(30) == 0, follow.output()[-2000:]
        wait_for(lambda: served() > first, 20, "the scorer following its trainer again")
        produced = traffic.stop()
        answers = read_answers(settings, set(traffic.event_ids), timeout=45)
        status, body = http_json(f"{base}/recommendations/u1?k=3")
        metrics = http_text(f"{base}/metrics")
        assert scorer.stop() == 0, scorer.output()[-3000:]
        assert trainer.stop() == 0, trainer.output()[-3000:]
    learned = store.read_meta(store.current_version()).events_seen  # type: ignore[arg-type]
    histories = keys_per_node(redis_cluster, f"streamrec:{model}:hist:*")
    tagged = keys_per_node(redis_cluster, f"streamrec:{{{model}}}:*")
    redis_errors = metric_value(metrics, "streamrec_redis_errors_total")
    summary(
        "redis_cluster_pipeline",
        events_in=produced,
        recommendations_out=len(answers.recommendations),
        duplicates=answers.duplicates,
        lost=len(answers.lost),
        histories_per_master="/".join(map(str, histories)),
        model_keys_per_master="/".join(map(str, tagged)),
        scorer_redis_errors=int(redis_errors),
    )
    assert not answers.lost and answers.duplicates == 0
    assert learned == produced  # the trainer's last snapshot holds every event
    assert status == 200 and body["history_length"] > 0 and body["history_available"]
    assert redis_errors == 0
    # Histories spread over every master; a model's other keys share one slot (one master).
    assert sum(histories) == 60 and all(histories), histories
    assert sorted(tagged)[:2] == [0, 0] and max(tagged) > 0, tagged
    for log in (scorer.output(), trainer.output()):
        assert "NOPERM" not in log and "NoPermissionError" not in log
        assert "CROSSSLOT" not in log and "same key slot" not in log


def test_the_scorer_user_runs_an_experiment_to_the_gates_decision_on_a_cluster(
    settings: Settings, redis_cluster: RedisClusterServers
) -> None:
    """The gate's transaction (WATCH both arms' current, MULTI, the record, the logs, the
    pins and both namespaces' results) in one slot, under the scorer's user."""
    model = settings.model_name
    urls = set_users(redis_cluster, model)
    operator = RedisCluster.from_url(urls["trainer"])
    scorer = RedisCluster.from_url(urls["scorer"])
    key = TEST_SNAPSHOT_KEY.encode()
    started = start_auto_experiment(operator, model, key)
    experiment = started.experiment
    champion_version, challenger_version = started.champion_version, started.challenger_version

    follower = follower_of(scorer, model, key)
    follower.poll()
    assert follower.routing is not None, "the scorer user could not load the challenger"
    s_scorer = replace(settings, redis_url=urls["scorer"], redis_cluster=True)
    wrote, state = asyncio.run(shadow_round_trip(s_scorer))
    assert wrote and state.shadow_served == {"u1": ["p3"]} and not state.degraded
    count_a_clear_win(follower)
    follower.poll()  # the gate promotes
    assert follower.decisions == 1
    serving, adopted = follower.poll()
    assert serving == experiment.challenger
    assert adopted is not None and adopted.current.version == challenger_version
    keys = ModelKeys(model, cluster=True)
    outcomes = {
        ns: results.by_version(scorer, keys.of(ns))
        for ns in (experiment.champion, experiment.challenger)
    }
    assert outcomes[model][champion_version][0]["action"] == "promote"
    assert outcomes[experiment.challenger][challenger_version][0]["arm"] == CHALLENGER
    assert scorer.get(keys.serving) == experiment.challenger.encode()
    # Still refused to the scorer, on the cluster as on one server.
    for command in (
        ("SET", keys.of(experiment.challenger).current, 1),
        ("DEL", keys.current),
        ("PUBLISH", keys.of(experiment.challenger).published_channel, 1),
    ):
        with pytest.raises(redis.exceptions.NoPermissionError):
            scorer.execute_command(*command)
    # A challenger outside the model's family could not share the gate's slot: refused.
    admin = RedisCluster.from_url(redis_cluster.address)
    other = f"other-{model}"
    other_version = SnapshotStore(admin, other, key).publish(popularity_snapshot())
    with pytest.raises(ConfigurationError, match="family"):
        model_actions.promote(
            Serving(admin, model),
            lambda ns: SnapshotStore(admin, ns, key),
            other_version,
            by="test",
            namespace=other,
        )


def test_every_state_store_works_on_a_cluster(
    settings: Settings, redis_cluster: RedisClusterServers
) -> None:
    """What the pipeline above does not reach in a short run, in process: pruning (a script
    deleting snap:<v> keys it names itself), batch layers and their pruning, the lease,
    the trainer status, and promoting a challenger namespace and rolling it back."""
    s = replace(settings, redis_url=redis_cluster.address, redis_cluster=True)
    client = s.redis_client()
    key = TEST_SNAPSHOT_KEY.encode()
    model = s.model_name
    store = SnapshotStore(client, model, key, keep=2)
    versions = [store.publish(popularity_snapshot()) for _ in range(5)]
    assert sorted(store.versions()) == versions[-2:]
    assert client.exists(store.keys.snapshot(versions[0])) == 0

    layers = batch_layer_store(s, client)
    layers.keep = 1
    events = [(f"u{i % 7}", f"p{i % 11}", i) for i in range(200)]
    for n in (100, 200):
        layers.publish(fit_item_item(events[:n], position={"v": {"0": n}}), {"v": {0: n}})
    assert layers.newest_version() == 2 and layers.load_newest() is not None
    assert client.exists(layers.keys.batch_layer(1)) == 0

    lease, rival = TrainerLease(client, model, ttl_s=5), TrainerLease(client, model, ttl_s=5)
    assert lease.acquire() and not rival.acquire() and lease.refresh()
    lease.release()
    assert rival.acquire()
    status = TrainerStatus(client, model)
    status.write({"state": "learning"})
    assert status.read() == {"state": "learning"}

    challenger = f"{model}.x1a2b3c4d"
    theirs = SnapshotStore(client, challenger, key).publish(popularity_snapshot())
    lifecycle, stores = serving(s, client), store_for(s, client)
    model_actions.promote(lifecycle, stores, theirs, by="test", namespace=challenger)
    assert lifecycle.read().namespace == challenger
    model_actions.rollback(lifecycle, stores, by="test")
    back = lifecycle.read()
    assert back.namespace == model and back.version == versions[-1]


def test_the_cluster_users_differ_from_the_documented_ones_only_by_the_tag() -> None:
    users = cluster_users("default")
    scorer = [r for r in users["scorer"] if r not in CLUSTER_DISCOVERY]
    assert "%R~streamrec:{default}:current" in scorer
    assert "%R~streamrec:{default}.x*:snap:*" in scorer
    assert "~streamrec:default:hist:*" in scorer and "&streamrec:default:published" in scorer
    assert [r.replace("{default}", "default") for r in scorer] == scorer_acl(
        "default", "scorer-secret"
    )
