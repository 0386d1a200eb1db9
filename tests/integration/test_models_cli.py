"""``streamrec models`` on a real Redis, and a rollback seen by a running scorer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from safetensors import safe_open

from online_model.persist.snapshot import Snapshot, SnapshotMeta
from streams.cli import main
from streams.io.topics import ensure_topics
from streams.scorer.runtime import snapshot_store
from streams.services.processes import ChildProcess, wait_for
from streams.settings import Settings
from streams.state.snapshot_store import SnapshotStore
from tests.support.scorer import http_json, wait_ready
from tests.support.snapshots import popularity_on


def models(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(main, ["models", *args], env=env, catch_exceptions=False)


def tamper(store: SnapshotStore, version: int) -> None:
    data = bytearray(store.redis.get(store.keys.snapshot(version)))
    data[-40] ^= 0x01  # a body byte: the MAC no longer matches
    store.redis.set(store.keys.snapshot(version), bytes(data))


def test_list_show_promote_rollback_follow(
    settings: Settings, settings_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    store = snapshot_store(settings)
    empty = models(settings_env, "list")
    assert empty.exit_code == 0 and "no snapshots" in empty.stderr

    v1 = store.publish(popularity_on("A"))
    v2 = store.publish(popularity_on("B"))
    v3 = store.publish(popularity_on("C", origin="replay"), make_current=False)

    listed = models(settings_env, "list", "--json")
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.stdout)
    assert [r["version"] for r in rows] == [v3, v2, v1]
    assert [r["current"] for r in rows] == [False, True, False]
    assert not any(r["pinned"] for r in rows)
    assert rows[0]["origin"] == "replay" and rows[1]["hit@10"] == 0.5
    assert rows[2]["range"] == "0:<15" and rows[2]["events"] == 15

    table = models(settings_env, "list").stdout.splitlines()
    name = settings.model_name
    assert table[0] == f"model {name} serves {name} version {v2} (following its trainer)"
    assert table[1].split()[:3] == ["VERSION", "CREATED", "ORIGIN"]
    current_line = next(line for line in table if line.startswith("*"))
    assert current_line.split()[1] == str(v2)

    shown = models(settings_env, "show", str(v3))
    assert shown.exit_code == 0, shown.output
    meta = json.loads(shown.stdout)
    assert meta["version"] == v3 and meta["origin"] == "replay" and meta["current"] is False
    assert meta["content_hash"] and meta["model_class"].endswith("DecayedPopularity")

    promoted = models(settings_env, "promote", str(v1))
    assert promoted.exit_code == 0, promoted.output
    assert store.current_version() == v1 and store.is_pinned()
    rows = json.loads(models(settings_env, "list", "--json").stdout)
    assert [(r["version"], r["current"], r["pinned"]) for r in rows if r["current"]] == [
        (v1, True, True)
    ]
    # A trainer publish does not move a pinned current.
    v4 = store.publish(popularity_on("D"))
    assert store.current_version() == v1

    followed = models(settings_env, "follow")
    assert followed.exit_code == 0, followed.output
    assert store.current_version() == v4 and not store.is_pinned()

    rolled = models(settings_env, "rollback")
    assert rolled.exit_code == 0, rolled.output
    assert store.current_version() == v3 and store.is_pinned()  # newest older verifiable one
    assert f"current={v3}" in rolled.stdout

    missing = models(settings_env, "show", "999")
    assert missing.exit_code == 2 and "no snapshot" in missing.stderr
    caplog.clear()
    absent = models(settings_env, "promote", "999999")
    assert absent.exit_code == 2 and "no snapshot" in absent.stderr
    assert store.current_version() == v3
    # nothing was there to reject: no "snapshot rejected" warning for an absent version
    assert not [r for r in caplog.records if "rejected" in r.getMessage()]


def test_a_tampered_version_cannot_be_promoted(
    settings: Settings, settings_env: dict[str, str]
) -> None:
    store = snapshot_store(settings)
    v1 = store.publish(popularity_on("A"))
    v2 = store.publish(popularity_on("B"))
    v3 = store.publish(popularity_on("C"))
    tamper(store, v2)

    refused = models(settings_env, "promote", str(v2))
    assert refused.exit_code == 2
    assert "MAC does not match" in refused.stderr
    assert store.current_version() == v3 and not store.is_pinned()

    rows = json.loads(models(settings_env, "list", "--json").stdout)
    bad = [r for r in rows if not r["verified"]]
    assert [r["version"] for r in bad] == [v2] and "MAC" in bad[0]["error"]
    assert "UNVERIFIED" in models(settings_env, "list").stdout

    shown = models(settings_env, "show", str(v2))
    assert shown.exit_code == 2 and "MAC does not match" in shown.stderr

    # Rollback skips the version that does not verify.
    assert models(settings_env, "rollback").exit_code == 0
    assert store.current_version() == v1


def test_rollback_changes_what_a_running_scorer_serves(
    settings: Settings, settings_env: dict[str, str], tmp_path: Path
) -> None:
    ensure_topics(settings)
    store = snapshot_store(settings)
    scorer = ChildProcess.streamrec(["scorer"], settings_env, tmp_path / "scorer.log")
    url = f"http://127.0.0.1:{settings.web_port}/recommendations/someone?k=3"
    try:
        wait_ready(settings, scorer)
        v1 = store.publish(popularity_on("A"))
        v2 = store.publish(popularity_on("B"))

        def serving(version: int, pages: list[str]) -> bool:
            status, body = http_json(url)
            return (
                status == 200
                and body["model_version"] == version
                and [i["page_id"] for i in body["items"]] == pages
            )

        wait_for(lambda: serving(v2, ["B0", "B1", "B2"]), 15, "the scorer serving v2")
        rolled = models(settings_env, "rollback")
        assert rolled.exit_code == 0, rolled.output
        wait_for(lambda: serving(v1, ["A0", "A1", "A2"]), 5, "the scorer serving v1 again")
        assert scorer.alive(), "the scorer restarted"
    finally:
        assert scorer.stop() == 0, scorer.output()[-3000:]


def test_export_writes_a_model_other_tools_read(
    settings: Settings, settings_env: dict[str, str], tmp_path: Path
) -> None:
    from online_model.data.generate import generate
    from online_model.models.covisit import Covisitation

    store = snapshot_store(settings)
    model = Covisitation()
    for user, page, ts, _ in generate(n_users=50, n_pages=40, n_events=1_000, seed=2).rows():
        model.learn_one(user, page, x={"ts": ts})
    version = store.publish(Snapshot(SnapshotMeta("ignored", offsets={"pv": {0: 1000}}), model))

    out = tmp_path / "model.safetensors"
    exported = models(settings_env, "export", str(version), "--output", str(out))
    assert exported.exit_code == 0, exported.output
    with safe_open(str(out), "np") as f:
        manifest = json.loads(f.metadata()["streamrec.manifest"])
        weights = f.get_tensor("neighbours.weight")
        offsets = f.get_tensor("pages.offsets")
    assert manifest["meta"]["version"] == version
    assert manifest["meta"]["offsets"] == {"pv": {"0": 1000}}
    assert manifest["model"]["class"] == "online_model.covisit.Covisitation"
    assert len(offsets) == model.n_items + 1
    assert sorted(weights.tolist()) == sorted(
        w for row in model._neighbours.values() for w in row.values()
    )

    raw = tmp_path / "model.bin"
    assert (
        models(
            settings_env, "export", str(version), "--format", "snapshot", "--output", str(raw)
        ).exit_code
        == 0
    )
    assert raw.read_bytes() == store.redis.get(store.keys.snapshot(version))

    missing = models(settings_env, "export", "999", "--output", str(tmp_path / "x"))
    assert missing.exit_code == 2 and "no snapshot" in missing.stderr
    tamper(store, version)
    refused = models(settings_env, "export", str(version), "--output", str(tmp_path / "y"))
    assert refused.exit_code == 2 and "MAC does not match" in refused.stderr
    assert not (tmp_path / "y").exists()


def test_export_of_a_format_1_snapshot_needs_the_pickle_flag(
    settings: Settings, settings_env: dict[str, str], tmp_path: Path
) -> None:
    from online_model.persist.snapshot import dump_snapshot
    from tests.support.fixtures import TEST_SNAPSHOT_KEY

    store = snapshot_store(settings)
    snap = popularity_on("A")
    version = int(store.redis.incr(store.keys.version_seq))
    meta = SnapshotMeta(settings.model_name, version=version, events_seen=15)
    old = dump_snapshot(Snapshot(meta, snap.model), TEST_SNAPSHOT_KEY.encode(), format_version=1)
    store.redis.set(store.keys.snapshot(version), old)

    out = tmp_path / "model.safetensors"
    refused = models(settings_env, "export", str(version), "--output", str(out))
    assert refused.exit_code == 2 and "STREAMREC_ALLOW_PICKLE=1" in refused.stderr
    assert not out.exists()

    allowed = models(
        {**settings_env, "STREAMREC_ALLOW_PICKLE": "1"},
        "export",
        str(version),
        "--output",
        str(out),
    )
    assert allowed.exit_code == 0, allowed.output
    with safe_open(str(out), "np") as f:
        assert json.loads(f.metadata()["streamrec.manifest"])["meta"]["version"] == version
        assert f.get_tensor("counts").tolist() == list(snap.model._counts.values())


def test_status_says_whether_a_trainer_learns(
    settings: Settings, settings_env: dict[str, str]
) -> None:
    import threading

    from streams.trainer.run import run_trainer
    from tests.support.topics import produce_page_views

    none = models(settings_env, "status")
    assert none.exit_code == 1 and "none alive" in none.output
    ensure_topics(settings)
    views = [
        {
            "event_id": f"e{i}",
            "user_id": f"u{i % 5}",
            "page_id": f"p{i % 9}",
            "ts": 1_700_000_000_000 + i,
        }
        for i in range(50)
    ]
    assert produce_page_views(settings, views).delivered == 50
    stop = threading.Event()
    ready: list = []
    thread = threading.Thread(
        target=run_trainer,
        args=(settings, "popularity"),
        kwargs={"stop_event": stop, "on_ready": ready.append},
    )
    thread.start()
    try:
        wait_for(lambda: ready and ready[0].events_learned == 50, 60, "the trainer learns")
        wait_for(lambda: models(settings_env, "status").exit_code == 0, 20, "a status record")
        line = models(settings_env, "status").output
        record = json.loads(models(settings_env, "status", "--json").output)
    finally:
        stop.set()
        thread.join(30)
    assert f"trainer of {settings.model_name}: learning" in line and "fetch wait 100 ms" in line
    assert record["events_learned"] == 50 and record["stalled"] is False
    after = models(settings_env, "status")  # a clean stop leaves no record
    assert after.exit_code == 1 and "none alive" in after.output
