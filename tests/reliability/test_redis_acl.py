"""Least-privilege Redis users (docs/redis-acl.md): the scorer reads snapshots and
reads/writes histories only; the trainer publishes. Credentials travel in REDIS_URL."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import redis

from streams.experiment import results
from streams.experiment.assignment import CHALLENGER
from streams.experiment.record import Experiment, new_id
from streams.experiment.store import ExperimentStore
from streams.io.topics import ensure_topics
from streams.lifecycle import model_actions
from streams.services.processes import ChildProcess, wait_for
from streams.settings import Settings
from streams.state.history import AsyncHistoryStore, HistoryUpdate, UserState
from streams.state.keys import ModelKeys
from streams.state.snapshot_store import SnapshotStore
from tests.support.experiments import count_a_clear_win, follower_of, start_auto_experiment
from tests.support.fixtures import TEST_SNAPSHOT_KEY
from tests.support.outages import PrivateServer, Traffic, env_for, replace, stopping, summary
from tests.support.scorer import http_json, http_text, metric_value, wait_assigned
from tests.support.snapshots import popularity_snapshot
from tests.support.topics import read_answers


def scorer_acl(model: str, password: str) -> list[str]:
    """The scorer's user, exactly as docs/redis-acl.md gives it: ``c`` is the model's
    namespace, ``x`` its challengers' (``<model>.x<id>``)."""
    c, x = f"streamrec:{model}:", f"streamrec:{model}.x*:"
    return [
        "scorer",
        "reset",
        "on",
        f">{password}",
        *(f"%R~{ns}{key}" for ns in (c, x) for key in READ_ONLY_KEYS),
        *(f"~{c}{key}" for key in OWN_KEYS),
        f"~{c}pinned",
        f"~{x}pinned",
        f"%W~{c}experiments",
        f"~{c}experiment-results",
        f"~{x}experiment-results",
        f"&{c}published",
        f"&{x}published",
        "-@all",
        *(f"+{command}" for command in SCORER_COMMANDS),
    ]


#: Keys the scorer reads in its own namespace and in its challengers': snapshots, and
#: what GET /models and the console show.
READ_ONLY_KEYS = ("current", "snap:*", "versions", "origins", "deltas")
#: Keys the scorer reads and writes in its own namespace: per-user state, the running
#: experiment, its counts and (the gate) the served namespace and the log of changes.
#: The gate also pins the namespace a promotion leaves (``pinned``, in both).
OWN_KEYS = (
    *("hist:*", "served:*", "shadow:*", "experiment", "experiment:*"),
    *("serving", "serving-log"),
)
SCORER_COMMANDS = (
    # reads: snapshots, user state, the record and counts, version lists
    *("get", "mget", "lrange", "lindex", "zrange", "hgetall", "exists"),
    # writes: user state, counts; the gate's transaction
    *("rpush", "ltrim", "expire", "set", "del", "lpush", "hset", "hincrbyfloat"),
    *("multi", "exec", "watch", "unwatch"),
    *("subscribe", "unsubscribe", "ping", "client|setinfo", "hello"),
)


def trainer_acl(model: str, password: str) -> list[str]:
    """The trainer's (and operators') user: every key of the model and its challengers."""
    c, x = f"streamrec:{model}:", f"streamrec:{model}.x*:"
    return [
        "trainer",
        "reset",
        "on",
        f">{password}",
        f"~{c}*",
        f"~{x}*",
        f"&{c}*",
        f"&{x}*",
        "-@all",
        "+@read",
        "+@write",
        "+@scripting",
        "+@transaction",
        "+publish",
        "+ping",
        "+client|setinfo",
        "+hello",
        "-@dangerous",
    ]


def user_url(server: PrivateServer, user: str, password: str) -> str:
    return f"redis://{user}:{password}@127.0.0.1:{server.port}/0"


def test_restricted_scorer_user_serves_and_hot_swaps_but_cannot_publish(
    settings: Settings, settings_env: dict[str, str], tmp_path: Path, private_redis: PrivateServer
) -> None:
    admin = redis.Redis.from_url(private_redis.address)
    model = settings.model_name
    admin.execute_command("ACL", "SETUSER", *scorer_acl(model, "scorer-secret"))
    admin.execute_command("ACL", "SETUSER", *trainer_acl(model, "trainer-secret"))
    scorer_url = user_url(private_redis, "scorer", "scorer-secret")
    trainer_url = user_url(private_redis, "trainer", "trainer-secret")
    s_scorer = replace(settings, redis_url=scorer_url)
    s_trainer = replace(settings, redis_url=trainer_url)
    ensure_topics(settings)
    trainer = ChildProcess.streamrec(
        ["trainer"],
        env_for(
            s_trainer, settings_env, STREAMREC_MODEL="covisit", STREAMREC_SNAPSHOT_INTERVAL="500ms"
        ),
        tmp_path / "trainer.log",
    )
    scorer = ChildProcess.streamrec(
        ["scorer"], env_for(s_scorer, settings_env), tmp_path / "scorer.log"
    )
    store = SnapshotStore(s_scorer.redis_client(), model, TEST_SNAPSHOT_KEY.encode())
    base = f"http://127.0.0.1:{settings.web_port}"
    traffic = Traffic(settings, rate=100.0, users=10)
    with stopping(trainer, scorer):
        wait_assigned(s_scorer, scorer)
        traffic.start()
        wait_for(lambda: (store.current_version() or 0) >= 2, 30, "the trainer publishing")
        first = wait_for(
            lambda: http_json(f"{base}/healthz")[1]["model_version"],
            20,
            "the scorer serving a snapshot",
        )
        wait_for(
            lambda: http_json(f"{base}/healthz")[1]["model_version"] > first,
            20,
            "a hot swap to a newer snapshot",
        )
        time.sleep(1)
        produced = traffic.stop()
        answers = read_answers(settings, set(traffic.event_ids), timeout=30)
        status, body = http_json(f"{base}/recommendations/u1?k=3")
        metrics = http_text(f"{base}/metrics")
        # An operator action through this scorer is refused as such, not as an outage.
        promote = http_json(f"{base}/models/promote", post={"version": first})
        assert promote[0] == 403 and "Redis ACL" in promote[1]["error"], promote
        # What the scorer's credentials can and cannot do.
        scorer_client = s_scorer.redis_client()
        current = int(scorer_client.get(f"streamrec:{model}:current"))
        denied = {}
        for what, command in {
            "set current": ("SET", f"streamrec:{model}:current", 1),
            "set snapshot": ("SET", f"streamrec:{model}:snap:{current}", b"forged"),
            "delete current": ("DEL", f"streamrec:{model}:current"),
            "publish hint": ("PUBLISH", f"streamrec:{model}:published", 1),
            "other model": ("GET", "streamrec:another-model:current"),
            "flushall": ("FLUSHALL",),
        }.items():
            with pytest.raises(redis.exceptions.NoPermissionError) as refused:
                scorer_client.execute_command(*command)
            denied[what] = str(refused.value).split(":")[0][:60]
        assert int(scorer_client.get(f"streamrec:{model}:current")) == current
        assert scorer.stop() == 0, scorer.output()[-3000:]
        assert trainer.stop() == 0, trainer.output()[-3000:]
    redis_errors = metric_value(metrics, "streamrec_redis_errors_total")
    summary(
        "redis_acl",
        events_in=produced,
        recommendations_out=len(answers.recommendations),
        duplicates=answers.duplicates,
        lost=len(answers.lost),
        dlq=0,
        swapped_to=http_version(body),
        scorer_redis_errors=int(redis_errors),
        denied_to_scorer=len(denied),
    )
    print("denied:", denied)
    assert not answers.lost
    assert status == 200 and body["history_length"] > 0 and body["history_available"]
    assert redis_errors == 0
    # A refusal is logged as auth:NoPermissionError (an experiment poll under a user without
    # MGET did, on every poll, before the scorer's user had the experiment keys).
    for log in (scorer.output(), trainer.output()):
        assert "NOPERM" not in log and "NoPermissionError" not in log


def test_the_scorer_user_runs_an_experiment_to_the_gates_decision(
    settings: Settings, private_redis: PrivateServer
) -> None:
    """Everything a scorer does in an experiment, under its own user: follow the record,
    load the challenger, add its counts, keep shadow lists, and (the gate) promote and
    record the outcome in both namespaces; then an operator ends the next experiment."""
    admin = redis.Redis.from_url(private_redis.address)
    model = settings.model_name
    admin.execute_command("ACL", "SETUSER", *scorer_acl(model, "scorer-secret"))
    admin.execute_command("ACL", "SETUSER", *trainer_acl(model, "trainer-secret"))
    operator = redis.Redis.from_url(user_url(private_redis, "trainer", "trainer-secret"))
    scorer_url = user_url(private_redis, "scorer", "scorer-secret")
    scorer = redis.Redis.from_url(scorer_url)
    key = TEST_SNAPSHOT_KEY.encode()
    started = start_auto_experiment(operator, model, key)
    experiment = started.experiment
    champion_version, challenger_version = started.champion_version, started.challenger_version

    follower = follower_of(scorer, model, key)
    follower.poll()  # joins: reads the record, loads the challenger
    assert follower.routing is not None, "the scorer user could not load the challenger"
    wrote, state = asyncio.run(shadow_round_trip(replace(settings, redis_url=scorer_url)))
    assert wrote and state.shadow_served == {"u1": ["p3"]} and not state.degraded
    count_a_clear_win(follower)
    follower.poll()  # adds the counts, asks the gate: promote
    assert follower.decisions == 1
    # A second scorer's gate finds it decided already (and lets go of its WATCH).
    late = ExperimentStore(scorer, model).finish(experiment, "stop", "late", {}, by="gate")
    assert late is None
    serving, adopted = follower.poll()  # serves the challenger's model it holds already
    assert serving == experiment.challenger
    assert adopted is not None and adopted.current.version == challenger_version
    outcomes = {
        ns: results.by_version(scorer, ModelKeys(ns))
        for ns in (experiment.champion, experiment.challenger)
    }
    assert outcomes[model][champion_version][0]["action"] == "promote"
    assert outcomes[experiment.challenger][challenger_version][0]["arm"] == CHALLENGER
    # GET /models (and the console) under the scorer user, after the promotion too.
    for ns in (model, experiment.challenger):
        rows = model_actions.version_rows(SnapshotStore(scorer, ns, key), 10)
        assert [row["experiments"][0]["experiment"] for row in rows] == [experiment.id]

    # The scorer still cannot move a challenger, forge its snapshot or reach another model.
    for command in (
        ("SET", f"streamrec:{experiment.challenger}:current", 1),
        ("SET", f"streamrec:{experiment.challenger}:snap:9", b"forged"),
        ("DEL", f"streamrec:{model}:current"),
        ("DEL", f"streamrec:{model}:versions"),
        ("HSET", "streamrec:another-model:experiment-results", "1:e", "{}"),
        ("SET", "streamrec:another-model:serving", experiment.challenger),
        ("PUBLISH", f"streamrec:{experiment.challenger}:published", 1),
    ):
        with pytest.raises(redis.exceptions.NoPermissionError):
            scorer.execute_command(*command)

    # An operator starts and stops the next one (champion: the promoted namespace).
    nid = new_id()
    following = Experiment(id=nid, champion=serving, challenger=f"{serving}.x{nid}", share=0.5)
    operators = ExperimentStore(operator, model)
    operators.start(following)
    SnapshotStore(operator, following.challenger, key).publish(popularity_snapshot())
    assert operators.finish(following, "stop", "manual", {}, by="operator") is not None
    assert results.by_version(operator, ModelKeys(following.challenger))


async def shadow_round_trip(settings: Settings) -> tuple[bool, UserState]:
    """Write a user's history, served and shadow lists as a scorer does, read them back."""
    store = AsyncHistoryStore(settings.redis_async_client(), settings.model_name)
    wrote = await store.write(HistoryUpdate({"u1": ["p1"]}, {"u1": ["p2"]}, {"u1": ["p3"]}))
    return wrote, await store.read(["u1"], shadow=True)


def http_version(body: dict) -> int:
    return int(body.get("model_version", -1))


def test_redis_url_credentials_and_tls_scheme_are_accepted() -> None:
    import redis.connection

    s = Settings.from_env({"REDIS_URL": "rediss://scorer:s3cret@redis.example:6380/2"})
    assert s.redacted_redis_url == "rediss://scorer:***@redis.example:6380/2"
    assert "s3cret" not in repr(s.describe())
    client = s.redis_client()
    kwargs = client.connection_pool.connection_kwargs
    assert client.connection_pool.connection_class is redis.connection.SSLConnection
    assert (kwargs["username"], kwargs["password"], kwargs["db"]) == ("scorer", "s3cret", 2)
    aclient = s.redis_async_client()
    akwargs = aclient.connection_pool.connection_kwargs
    assert (akwargs["username"], akwargs["password"]) == ("scorer", "s3cret")
    assert "SSL" in aclient.connection_pool.connection_class.__name__
    with pytest.raises(Exception, match="REDIS_URL must start with"):
        Settings.from_env({"REDIS_URL": "http://scorer:s3cret@redis.example"})


def test_the_users_in_the_docs_are_the_ones_tested() -> None:
    """docs/redis-acl.md shows the same ACL SETUSER lines the tests above run."""
    text = (Path(__file__).parents[2] / "docs" / "redis-acl.md").read_text()
    block = text.split("```text\n", 1)[1].split("```", 1)[0]
    users: dict[str, list[str]] = {}
    for line in block.splitlines():
        if line.startswith("ACL SETUSER"):
            name = line.split()[2]
            users[name] = []
        if line.strip() and not line.startswith("#"):
            users[name] += line.split()
    assert users["scorer"] == ["ACL", "SETUSER", *scorer_acl("default", "SCORER_PASSWORD")]
    assert users["trainer"] == ["ACL", "SETUSER", *trainer_acl("default", "TRAINER_PASSWORD")]
    assert users["default"] == ["ACL", "SETUSER", "default", "off"]
