"""Per-request rules and expiry on the real broker and Redis: REST, the stream, batch-score."""

from __future__ import annotations

import json
import time
from pathlib import Path
from urllib.parse import urlencode

from streams.catalog.publish import publish_pages
from streams.catalog.rules import CONTEXT_CATEGORY, CONTEXT_EXCLUDE
from streams.io.topics import ensure_topics
from streams.services.processes import ChildProcess, wait_for
from streams.settings import Settings
from tests.integration.test_catalog import streamrec, view, views_making_hot_everyones_favourite
from tests.support.scorer import http_json, wait_assigned
from tests.support.topics import TopicReader, produce_page_views, read_answers

N_PAGES = 30


def sections() -> list[dict[str, object]]:
    """p0..p29: even pages are sport, odd pages news."""
    return [
        {"page_id": f"p{i}", "categories": ["sport" if i % 2 == 0 else "news"]}
        for i in range(N_PAGES)
    ]


def views_ranking_pages_in_order() -> list[dict[str, object]]:
    """p0 viewed by 30 users, p1 by 29, ...: popularity ranks p0, p1, p2, ..."""
    now = int(time.time() * 1000)
    views: list[dict[str, object]] = []
    for i in range(N_PAGES):
        for u in range(N_PAGES - i):
            views.append(view(f"fan{u}", f"p{i}", now + len(views)))
    return views


class Scorer:
    """A scorer process with helpers to ask it over REST and through the topic."""

    def __init__(self, settings: Settings, env: dict[str, str], log: Path) -> None:
        self.settings = settings
        self.proc = ChildProcess.streamrec(["scorer"], env, log)
        self.rest = f"http://127.0.0.1:{settings.web_port}/recommendations"

    def wait_ranked(self) -> None:
        """Once partitions are assigned, views that rank p0, p1, ... until REST shows it."""
        wait_assigned(self.settings, self.proc)
        produce_page_views(self.settings, views_ranking_pages_in_order())
        top = [f"p{i}" for i in range(10)]
        wait_for(lambda: self.rest_pages("newcomer") == top, 60, "p0..p9 over REST")

    def rest_answer(self, user: str, **query: object) -> tuple[int, dict[str, object]]:
        pairs = [(k, v) for k, vs in query.items() for v in (vs if isinstance(vs, list) else [vs])]
        status, body = http_json(f"{self.rest}/{user}?{urlencode(pairs)}")
        return status, body

    def rest_pages(self, user: str, **query: object) -> list[str]:
        status, body = self.rest_answer(user, **query)
        assert status == 200, body
        return [item["page_id"] for item in body["items"]]  # type: ignore[attr-defined]

    def on_the_topic(self, user: str, page: str, context: dict[str, str]) -> list[str]:
        probe = view(user, page, int(time.time() * 1000))
        probe["context"] = context
        produce_page_views(self.settings, [probe])
        answers = read_answers(self.settings, {str(probe["event_id"])})
        [answer] = [a for a in answers.recommendations if a["event_id"] == probe["event_id"]]
        return [item["page_id"] for item in answer["items"]]

    def stop(self) -> None:
        code = self.proc.stop()
        log = self.proc.output()
        assert code == 0, log[-3000:]
        assert "Traceback" not in log, log[-3000:]


def test_category_and_exclude_hold_over_rest_and_on_the_topic(
    settings: Settings, settings_env: dict[str, str], tmp_path: Path
) -> None:
    ensure_topics(settings)
    publish_pages(settings, sections())
    scorer = Scorer(settings, settings_env, tmp_path / "scorer.log")
    try:
        scorer.wait_ranked()
        assert scorer.rest_pages("newcomer", category="news", k=5) == ["p1", "p3", "p5", "p7", "p9"]
        both = scorer.rest_pages("newcomer", category=["news", "sport"], exclude=["p0", "p1"], k=3)
        assert both == ["p2", "p3", "p4"]
        sport = scorer.rest_pages("newcomer", category="sport", exclude="p2")
        assert sport == [f"p{i}" for i in range(0, 22, 2) if i != 2]  # still 10 long
        assert scorer.rest_pages("newcomer", category="weather") == []
        for bad, words in (({"category": ""}, "category"), ({"exclude": " "}, "exclude")):
            status, body = scorer.rest_answer("newcomer", **bad)
            assert status == 400 and f"{words} must not be empty" in str(body["error"]), body

        rules = {CONTEXT_CATEGORY: "sport", CONTEXT_EXCLUDE: "p0|p4"}
        assert scorer.on_the_topic("reader", "p2", rules) == [
            f"p{i}" for i in range(6, 26, 2)
        ]  # sport, without p0 and p4 (excluded) and p2 (just viewed)
        assert scorer.on_the_topic("reader2", "p1", {}) == [f"p{i}" for i in range(11) if i != 1]

        bad_view = view("rule-breaker", "p3", int(time.time() * 1000))
        bad_view["context"] = {CONTEXT_EXCLUDE: "p1||p2", "app": "kept"}
        produce_page_views(settings, [bad_view])
        dlq = TopicReader(settings, settings.topic_dlq, f"dlq-{time.monotonic_ns()}")
        try:
            [dead] = dlq.read_until(lambda got: len(got) >= 1, 45)
        finally:
            dlq.close()
        headers = {k: v.decode() for k, v in dead.headers() or []}
        assert headers["streamrec.error.reason"] == "bad_rule"
        assert (
            f"context {CONTEXT_EXCLUDE}: exclude must not be empty"
            in headers["streamrec.error.message"]
        )
        assert dead.key() == b"rule-breaker"
    finally:
        scorer.stop()


def test_batch_score_applies_category_and_exclude_and_refuses_bad_values(
    settings: Settings, settings_env: dict[str, str], tmp_path: Path
) -> None:
    from online_model.models.popularity import DecayedPopularity
    from online_model.persist.snapshot import Snapshot, SnapshotMeta
    from streams.wiring import snapshot_store

    model = DecayedPopularity()
    for i in range(N_PAGES):
        for _ in range(N_PAGES - i):
            model.learn_one("someone", f"p{i}")
    snapshot_store(settings).publish(Snapshot(SnapshotMeta("x"), model))
    publish_pages(settings, sections())
    users = tmp_path / "users.txt"
    users.write_text("a\nb\n")
    out = tmp_path / "out.jsonl"

    def batch_score(*rules: str) -> tuple[int, str, list[list[str]]]:
        args = ["batch-score", "--users", str(users), "--output", str(out), *rules]
        done = streamrec(args, settings_env)
        if done.returncode:
            return done.returncode, done.stderr, []
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        return 0, done.stderr, [[item["page_id"] for item in row["items"]] for row in rows]

    code, err, lists = batch_score("--category", "news", "--exclude", "p1", "--exclude", "p5")
    assert code == 0, err
    news = [f"p{i}" for i in (3, 7, 9, 11, 13, 15, 17, 19, 21, 23)]
    assert lists == [news, news]
    for rules, message in (
        (["--exclude", ""], "error: exclude must not be empty"),
        (["--category", "nope"], "error: --category: no page of the catalog is in nope"),
    ):
        code, err, _ = batch_score(*rules)
        assert code == 2 and message in err and "Traceback" not in err, err


def test_a_page_leaves_every_list_at_its_expires_at_with_no_further_record(
    settings: Settings, settings_env: dict[str, str], tmp_path: Path
) -> None:
    ensure_topics(settings)
    scorer = Scorer(settings, settings_env, tmp_path / "scorer.log")
    try:
        wait_assigned(settings, scorer.proc)
        produce_page_views(settings, views_making_hot_everyones_favourite())
        wait_for(lambda: scorer.rest_pages("newcomer")[:1] == ["hot"], 60, "hot on top")
        expires_at = int(time.time() * 1000) + 10_000
        publish_pages(settings, [{"page_id": "hot", "expires_at": expires_at}])
        # Before expires_at the page is served; from it on, without any other catalog
        # record, it is not.
        seen_before: list[bool] = []
        while time.time() * 1000 < expires_at - 1_000:
            seen_before.append("hot" in scorer.rest_pages("newcomer"))
            time.sleep(0.2)
        assert seen_before and all(seen_before)
        wait_for(lambda: "hot" not in scorer.rest_pages("newcomer"), 30, "hot expired")
        gone_after_s = time.time() - expires_at / 1000
        assert time.time() * 1000 >= expires_at
        assert "hot" not in scorer.on_the_topic("reader", "p3", {})
        assert len(scorer.rest_pages("newcomer")) == 10  # 16 pages, one expired
    finally:
        scorer.stop()
    print(f"expired page gone from REST {gone_after_s:.2f} s after its expires_at")


def test_a_new_page_reaches_readers_of_its_category_at_once_and_leaves_when_hidden(
    settings: Settings, settings_env: dict[str, str], tmp_path: Path
) -> None:
    ensure_topics(settings)
    now = int(time.time() * 1000)
    brand_new = {"page_id": "brand-new", "categories": ["news"], "published_at": now}
    publish_pages(settings, [*sections(), brand_new])
    scorer = Scorer(settings, settings_env, tmp_path / "scorer.log")
    try:
        scorer.wait_ranked()
        # Nobody viewed brand-new: no model knows it. A news reader gets it in the last
        # place (STREAMREC_FRESH_SLOTS=1), a sport reader does not.
        news = scorer.on_the_topic("news-reader", "p1", {})
        assert news == [*[f"p{i}" for i in range(11) if i != 1][:9], "brand-new"], news
        assert scorer.rest_pages("news-reader")[-1] == "brand-new"
        assert "brand-new" not in scorer.on_the_topic("sport-reader", "p2", {})
        hidden = streamrec(["catalog", "set", "brand-new", "--hidden"], settings_env)
        assert hidden.returncode == 0, hidden.stderr
        wait_for(lambda: "brand-new" not in scorer.rest_pages("news-reader"), 30, "hidden")
        assert len(scorer.rest_pages("news-reader")) == 10
    finally:
        scorer.stop()
