"""Least-privilege Redis users (docs/redis-acl.md): the scorer reads snapshots and
reads/writes histories only; the trainer publishes. Credentials travel in REDIS_URL."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis

from streams.io.topics import ensure_topics
from streams.ops.processes import ChildProcess, wait_for
from streams.settings import Settings
from streams.state.snapshot_store import SnapshotStore
from tests.support.fixtures import TEST_SNAPSHOT_KEY
from tests.support.outages import PrivateServer, Traffic, env_for, replace, stopping, summary
from tests.support.scorer import http_json, http_text, wait_assigned
from tests.support.topics import read_answers


def scorer_acl(model: str, password: str) -> list[str]:
    """The scorer's user, exactly as docs/redis-acl.md gives it."""
    p = f"streamrec:{model}:"
    return [
        "scorer",
        "reset",
        "on",
        f">{password}",
        f"%R~{p}current",
        f"%R~{p}snap:*",
        f"~{p}hist:*",
        f"~{p}served:*",
        f"&{p}published",
        "-@all",
        "+get",
        "+lrange",
        "+rpush",
        "+ltrim",
        "+expire",
        "+set",
        "+subscribe",
        "+unsubscribe",
        "+ping",
        "+client|setinfo",
        "+hello",
    ]


def trainer_acl(model: str, password: str) -> list[str]:
    p = f"streamrec:{model}:"
    return [
        "trainer",
        "reset",
        "on",
        f">{password}",
        f"~{p}*",
        f"&{p}*",
        "-@all",
        "+@read",
        "+@write",
        "+@scripting",
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
            s_trainer, settings_env, STREAMREC_MODEL="covisit", STREAMREC_SNAPSHOT_INTERVAL="0.5"
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
    redis_errors = float(
        next(
            line.split()[-1]
            for line in metrics.splitlines()
            if line.startswith("streamrec_redis_errors_total")
        )
    )
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
    assert "NOPERM" not in scorer.output() and "NOPERM" not in trainer.output()


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
