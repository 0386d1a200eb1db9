"""The page catalog on the real broker and Redis: load, hide, show, and what scorers serve."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path

from confluent_kafka.admin import AdminClient, ConfigResource

from streams.catalog.follower import read_catalog
from streams.io.topics import ensure_topics
from streams.services.processes import ChildProcess, wait_for
from streams.settings import Settings
from tests.integration.test_readme_examples import OPERATIONS, commands, run, section
from tests.support.scorer import http_json, wait_assigned
from tests.support.topics import produce_page_views, read_answers


def streamrec(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run(["streamrec", *args], env, Path.cwd())


def test_the_pages_topic_is_created_compacted(settings: Settings) -> None:
    ensure_topics(settings)
    admin = AdminClient(settings.kafka_common())
    resource = ConfigResource(ConfigResource.Type.TOPIC, settings.topic_pages)
    configs = admin.describe_configs([resource])[resource].result(timeout=30)
    assert configs["cleanup.policy"].value == "compact"


def test_load_then_hide_keeps_the_rest_of_the_record(
    settings: Settings, settings_env: dict[str, str], tmp_path: Path
) -> None:
    pages = tmp_path / "pages.csv"
    pages.write_text(
        "page_id,available,categories,expires_at,title,author\n"
        "a,true,news|sport,2030-01-01T00:00:00Z,A title,ann\n"
        "b,false,,,,\n"
        "c,,shop,,,\n"
    )
    done = streamrec(["catalog", "load", str(pages)], settings_env)
    assert done.returncode == 0, done.stderr
    assert "loaded 3 pages (1 hidden)" in done.stdout
    hide = streamrec(["catalog", "set", "a", "--hidden", "--json"], settings_env)
    assert hide.returncode == 0, hide.stderr
    assert json.loads(hide.stdout)["available"] is False
    catalog = read_catalog(settings)
    now = int(time.time() * 1000)
    assert [catalog.eligible(p, now) for p in ("a", "b", "c", "unknown")] == [
        False,
        False,
        True,
        True,
    ]
    record = catalog.record("a")
    assert record is not None
    assert record["categories"] == ["news", "sport"] and record["title"] == "A title"
    assert record["attributes"] == {"author": "ann"} and record["expires_at"] == 1893456000000
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"page_id": "x"}\n{"page_id": "y", "expires_at": "soon"}\n')
    refused = streamrec(["catalog", "load", str(bad)], settings_env)
    assert refused.returncode == 2 and "line 2" in refused.stderr and "expires_at" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert read_catalog(settings).record("x") is None  # nothing of a bad file is sent


def views_making_hot_everyones_favourite(n_users: int = 30) -> list[dict[str, object]]:
    """Every user views ``hot``; a few view ``p0``..``p14`` too: ``hot`` tops popularity."""
    now = int(time.time() * 1000)
    views: list[dict[str, object]] = []
    for u in range(n_users):
        for page in ("hot", f"p{u % 15}"):
            views.append(view(f"fan{u}", page, now + len(views)))
    return views


def view(user: str, page: str, ts: int) -> dict[str, object]:
    return {
        "event_id": uuid.uuid4().hex,
        "user_id": user,
        "page_id": page,
        "ts": ts,
        "session_id": None,
        "referrer": None,
        "context": {},
    }


def test_a_hidden_page_leaves_rest_and_the_topic_and_comes_back_when_shown(
    settings: Settings, settings_env: dict[str, str], tmp_path: Path
) -> None:
    ensure_topics(settings)
    scorer = ChildProcess.streamrec(["scorer"], settings_env, tmp_path / "scorer.log")
    rest = f"http://127.0.0.1:{settings.web_port}/recommendations"

    def rest_pages(user: str) -> list[str]:
        status, body = http_json(f"{rest}/{user}?k=10")
        assert status == 200, body
        return [item["page_id"] for item in body["items"]]

    def served_on_the_topic(user: str) -> list[str]:
        probe = view(user, "p1", int(time.time() * 1000))
        produce_page_views(settings, [probe])
        answers = read_answers(settings, {str(probe["event_id"])})
        [answer] = [a for a in answers.recommendations if a["event_id"] == probe["event_id"]]
        return [item["page_id"] for item in answer["items"]]

    try:
        wait_assigned(settings, scorer)
        produce_page_views(settings, views_making_hot_everyones_favourite())
        wait_for(lambda: rest_pages("newcomer")[:1] == ["hot"], 60, "hot on top over REST")
        assert served_on_the_topic("reader1")[0] == "hot"

        # hot is known only from page views: the catalog topic has no record of it yet.
        hidden = streamrec(["catalog", "set", "hot", "--hidden", "--create"], settings_env)
        assert hidden.returncode == 0, hidden.stderr
        acknowledged = time.monotonic()
        wait_for(lambda: "hot" not in rest_pages("newcomer"), 30, "hot gone from REST")
        gone_after_s = time.monotonic() - acknowledged
        rest_list = rest_pages("newcomer")
        topic_list = served_on_the_topic("reader2")
        assert "hot" not in topic_list
        assert len(rest_list) == 10 and len(topic_list) == 10  # 16 pages, one hidden

        shown = streamrec(["catalog", "set", "hot", "--visible"], settings_env)
        assert shown.returncode == 0, shown.stderr
        wait_for(lambda: rest_pages("newcomer")[:1] == ["hot"], 30, "hot back on REST")
        assert served_on_the_topic("reader3")[0] == "hot"
    finally:
        code = scorer.stop()
    log = scorer.output()
    assert code == 0, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
    print(f"hidden page gone from REST {gone_after_s:.2f} s after the record was acknowledged")


def test_batch_score_leaves_hidden_pages_out_and_keeps_lists_full(
    settings: Settings, settings_env: dict[str, str], tmp_path: Path
) -> None:
    from online_model.models.popularity import DecayedPopularity
    from online_model.persist.snapshot import Snapshot, SnapshotMeta
    from streams.catalog.publish import publish_pages
    from streams.wiring import snapshot_store

    model = DecayedPopularity()
    for i in range(40):
        for _ in range(40 - i):
            model.learn_one("someone", f"p{i}")
    snapshot_store(settings).publish(Snapshot(SnapshotMeta("x"), model))
    users = tmp_path / "users.txt"
    users.write_text("a\nb\n")

    def lists() -> list[list[str]]:
        out = tmp_path / "out.jsonl"
        done = streamrec(["batch-score", "--users", str(users), "--output", str(out)], settings_env)
        assert done.returncode == 0, done.stderr
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        return [[item["page_id"] for item in row["items"]] for row in rows]

    before = lists()
    top = set(before[0][:5])
    publish_pages(settings, [{"page_id": p, "available": False} for p in top])
    after = lists()
    assert all(len(row) == 10 and not top & set(row) for row in after), (top, after)
    assert after[0][:5] == [p for p in before[0] if p not in top]  # same order otherwise


def test_the_documented_catalog_commands_work_as_written(
    settings: Settings, settings_env: dict[str, str], tmp_path: Path
) -> None:
    catalog = section("Catalog: hide, show and describe pages", OPERATIONS)
    load, hide, hidden, show, look = commands(catalog, "catalog")
    (tmp_path / load[3]).write_text("page_id,categories\np42,news\np43,news\n")
    now = int(time.time() * 1000)
    for args, eligible in ((load, True), (hide, False), (show, True)):
        done = run(args, settings_env, tmp_path)
        assert done.returncode == 0, (args, done.stderr)
        assert read_catalog(settings).eligible("p42", now) is eligible, args
        if args is hide:
            listed = run(hidden, settings_env, tmp_path)
            assert listed.returncode == 0 and listed.stdout == "p42: hidden; categories news\n"
    done = run(look, settings_env, tmp_path)
    assert done.returncode == 0 and done.stdout == "p42: visible; categories news\n", done.stderr
