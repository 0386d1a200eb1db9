"""``streamrec batch-score`` gives each user exactly what REST gives them."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any

import fastavro
from click.testing import CliRunner, Result

from online_model.models.covisit import Covisitation
from online_model.persist.snapshot import Snapshot, SnapshotMeta
from streams.cli import main
from streams.io.producer import page_view
from streams.io.topics import ensure_topics
from streams.scorer.runtime import snapshot_store
from streams.services.processes import ChildProcess, wait_for
from streams.settings import Settings
from streams.state.history import HistoryStore, HistoryUpdate
from tests.support.scorer import http_json, wait_ready
from tests.support.topics import produce_page_views

N_PAGES = 30


def walk(user: int, steps: int, start: int = 0) -> list[str]:
    return [f"p{(user * 3 + start + s) % N_PAGES}" for s in range(steps)]


def trained_covisit() -> Covisitation:
    model = Covisitation()
    for user in range(40):
        for page in walk(user, 12):
            model.learn_one(f"t{user}", page)
    return model


def batch_score(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(main, ["batch-score", *args], env=env, catch_exceptions=False)


def rest_items(body: dict[str, Any]) -> list[tuple[str, float]]:
    return [(i["page_id"], i["score"]) for i in body["items"]]


def test_batch_rows_equal_rest_answers(
    settings: Settings, settings_env: dict[str, str], tmp_path: Path
) -> None:
    ensure_topics(settings)
    store = snapshot_store(settings)
    version = store.publish(Snapshot(SnapshotMeta("x", events_seen=480), trained_covisit()))
    scorer = ChildProcess.streamrec(["scorer"], settings_env, tmp_path / "scorer.log")
    users = [f"u{i}" for i in range(8)]
    steps = {u: 2 + i % 4 for i, u in enumerate(users)}
    base = f"http://127.0.0.1:{settings.web_port}/recommendations"
    try:
        wait_ready(settings, scorer)
        wait_for(
            lambda: http_json(f"{base}/nobody")[1]["model_version"] == version, 15, "v1 served"
        )
        # Users get their history the real way: page views through the scorer.
        now = int(time.time() * 1000)
        views = [
            page_view(u, page, now + 10 * s + i)
            for i, u in enumerate(users)
            for s, page in enumerate(walk(i + 5, steps[u]))
        ]
        assert produce_page_views(settings, views).delivered == len(views)
        wait_for(
            lambda: all(http_json(f"{base}/{u}")[1]["history_length"] == steps[u] for u in users),
            60,
            "histories written by the scorer",
        )
        everyone = [*users, "nobody"]
        rest = {u: http_json(f"{base}/{u}?k=10")[1] for u in everyone}

        users_file = tmp_path / "users.txt"
        users_file.write_text("\n".join([*everyone, "", "u0"]) + "\n")  # blank + duplicate
        out = tmp_path / "recs.jsonl"
        result = batch_score(
            settings_env, "--users", str(users_file), "--output", str(out), "--chunk-size", "3"
        )
        assert result.exit_code == 0, result.output
        rows = [json.loads(line) for line in out.read_text().splitlines()]

        avro_out = tmp_path / "recs.avro"
        assert (
            batch_score(
                settings_env, "--users", str(users_file), "--output", str(avro_out)
            ).exit_code
            == 0
        )
        csv_out = tmp_path / "recs.csv"
        csv_file = tmp_path / "users.csv"
        csv_file.write_text("segment,user_id\nx,u1\ny,nobody\n")
        assert (
            batch_score(
                settings_env, "--users", str(csv_file), "--output", str(csv_out), "--k", "3"
            ).exit_code
            == 0
        )
    finally:
        assert scorer.stop() == 0, scorer.output()[-3000:]

    assert [r["user_id"] for r in rows] == everyone
    for row in rows:
        body = rest[row["user_id"]]
        assert rest_items(body) == [(i["page_id"], i["score"]) for i in row["items"]]
        assert row["model_version"] == body["model_version"] == version
        assert row["history_length"] == body["history_length"]
    # The lists are personal (history matters) and exclude what the user has seen.
    assert len({tuple(i["page_id"] for i in r["items"]) for r in rows}) > 3
    for i, u in enumerate(users):
        seen = set(walk(i + 5, steps[u]))
        assert rows[i]["items"] and not seen & {p["page_id"] for p in rows[i]["items"]}
    assert rows[-1]["items"], "an unknown user gets the cold-start list"

    with avro_out.open("rb") as fh:
        records: list[Any] = list(fastavro.reader(fh))
    assert [(r["user_id"], r["items"], r["model_version"]) for r in records] == [
        (r["user_id"], r["items"], r["model_version"]) for r in rows
    ]

    with csv_out.open() as fh:
        lines = list(csv.DictReader(fh))
    assert [(x["user_id"], x["rank"], x["page_id"]) for x in lines if x["user_id"] == "u1"] == [
        ("u1", str(n), p["page_id"]) for n, p in enumerate(rest["u1"]["items"][:3], 1)
    ]
    assert {x["user_id"] for x in lines} == {"u1", "nobody"}


def test_without_a_snapshot_batch_uses_cold_start_popularity(
    settings: Settings, settings_env: dict[str, str], tmp_path: Path
) -> None:
    history = HistoryStore(settings.redis_client(), settings.model_name)
    history.write(HistoryUpdate(appends={"a": ["p1", "p2"], "b": ["p1", "p3"], "c": ["p1"]}))
    users_file = tmp_path / "users.txt"
    users_file.write_text("a\nb\nc\nnew\n")
    out = tmp_path / "out.jsonl"
    result = batch_score(settings_env, "--users", str(users_file), "--output", str(out))
    assert result.exit_code == 0, result.output
    assert "no current snapshot" in result.stderr and "cold-start" in result.stderr
    rows = {r["user_id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert {r["model_version"] for r in rows.values()} == {0}
    assert rows["new"]["items"][0]["page_id"] == "p1"  # the most viewed
    assert "p1" not in {i["page_id"] for i in rows["a"]["items"]}  # seen pages excluded
    # Learned in file order with decay: p3 (seen after p2) ranks above it.
    assert [i["page_id"] for i in rows["c"]["items"]] == ["p3", "p2"]


def test_a_users_csv_without_user_id_column_is_refused(
    settings: Settings, settings_env: dict[str, str], tmp_path: Path
) -> None:
    users_file = tmp_path / "users.csv"
    users_file.write_text("id,segment\n1,x\n")
    result = batch_score(
        settings_env, "--users", str(users_file), "--output", str(tmp_path / "o.jsonl")
    )
    assert result.exit_code == 2 and "user_id column" in result.stderr
