"""The operations console in a real browser (Debian's headless Chromium), against a
real scorer with tokens on the embedded broker and Valkey.

The browser is the system's ``/usr/bin/chromium`` (``make install`` adds it); playwright
only drives it and never downloads one. ``STREAMREC_CONSOLE_SCREENSHOT=<path>`` saves a
picture of the page as the test leaves it (how docs/console.png is made).
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streams.experiment import gate
from streams.experiment.assignment import CHALLENGER, CHAMPION
from streams.experiment.record import Experiment, new_id
from streams.experiment.statistics import ArmCounts
from streams.experiment.store import ExperimentStore
from streams.io.producer import ReliableProducer, page_view
from streams.scorer.runtime import ScorerRuntime
from streams.services.processes import ChildProcess, wait_for
from streams.settings import Settings
from streams.state.snapshot_store import SnapshotStore
from tests.support.scorer import ADMIN_TOKEN, READ_TOKEN, http_json, wait_assigned, with_tokens
from tests.support.snapshots import popularity_on
from tests.support.topics import produce_page_views

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's chromium (make install adds it)"
    ),
]


def traffic(settings: Settings, stop: threading.Event) -> None:
    """Rounds of page views, each from new users: a first view, then one of the pages
    popularity_on("A") serves them (a hit) or a page it does not know (a miss); and now
    and then an undecodable message (a dead letter). Small rounds, so that the page sees
    the rates over several polls."""
    producer = ReliableProducer(settings)
    rng = random.Random(7)
    round_ = 0
    while not stop.is_set():
        now = int(time.time() * 1000)
        views = []
        for i in range(10):
            user = f"r{round_}u{i}"
            first, second = rng.sample(range(5), 2)
            nxt = f"A{second}" if rng.random() < 0.6 else f"Z{rng.randrange(50)}"
            views += [page_view(user, f"A{first}", now), page_view(user, nxt, now + 500)]
        produce_page_views(settings, views, producer=producer)
        if round_ % 3 == 0:
            producer.produce(settings.topic_page_views, b"\x00not avro", key=b"bad")
            producer.flush(30)
        round_ += 1
        stop.wait(1.0)


def stopped_experiment(settings: Settings) -> str:
    """An experiment on the served namespace, stopped by the gate (the challenger was worse
    by 0.3 hit@10; it never had a snapshot); returns its id."""
    experiments = ExperimentStore(settings.redis_client(), settings.model_name)
    experiment = Experiment(new_id(), settings.model_name, f"{settings.model_name}.xc", 0.5)
    experiments.start(experiment)
    arms = {CHAMPION: ArmCounts(judged=200, hits=100), CHALLENGER: ArmCounts(judged=200, hits=40)}
    figures = gate.figures(experiment, arms, settings.k)
    experiments.finish(experiment, gate.STOP, "challenger worse", figures, by="gate")
    return experiment.id


#: Points per line of one chart (selector): {series name: number of points}.
CHART_POINTS = """sel => Object.fromEntries(
  [...document.querySelectorAll(sel + ' path.line')].map(
    p => [p.dataset.series, p.getAttribute('d').split('L').length]))"""


@pytest.fixture
def browser_page() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1100})
            yield page
        finally:
            browser.close()


def test_console_shows_the_pipeline_and_moves_models(
    settings: Settings, store: SnapshotStore, tmp_path: Path, browser_page: Any
) -> None:
    page = browser_page
    v1, v2 = store.publish(popularity_on("A")), store.publish(popularity_on("B"))
    decided = stopped_experiment(settings)  # its outcome is kept beside v2, then served
    s = with_tokens(settings)  # the same store, a scorer that wants tokens
    base = f"http://127.0.0.1:{s.web_port}"
    env = {**os.environ, **s.to_env(), "STREAMREC_LOG_LEVEL": "warning"}
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    dialogs: list[str] = []

    def accept(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)

    stop = threading.Event()
    scorer = ChildProcess.streamrec(["scorer"], env, tmp_path / "scorer.log")
    feeder = threading.Thread(target=traffic, args=(s, stop), daemon=True)
    try:
        wait_assigned(s, scorer)
        feeder.start()
        assert http_json(f"{base}/console/state")[0] == 401  # the data needs a token
        page.goto(f"{base}/console")
        # Tokens are set: the page asks for one before it reads anything.
        page.wait_for_selector("#token-form:not([hidden])")
        assert page.is_hidden("#console")
        page.fill("#token-input", ADMIN_TOKEN)
        page.click("#token-form button[type=submit]")
        page.wait_for_selector("#console:not([hidden])")
        assert page.text_content("#served-version") == f"v{v2}"
        assert page.text_content("#badge-kafka") == "Kafka up"
        assert page.text_content("#badge-redis") == "Redis up"
        assert page.text_content("#badge-consumer") == "consumer ok"
        assert page.text_content("#badge-trainer") == "no trainer"  # none runs here
        # Serving works, but nothing learns: the overall status says so, amber.
        assert page.text_content("#badge-status") == "no trainer"
        assert "warn" in (page.get_attribute("#badge-status", "class") or "")

        # Polls accumulate: throughput, dead letters and served quality become lines.
        page.wait_for_function(
            "() => document.querySelectorAll('#chart-throughput path.line').length === 2"
            " && document.querySelector('#chart-dlq path.line:not([data-series=\"none\"])')"
            " !== null && document.querySelectorAll('#chart-quality path.line').length === 2",
            timeout=60_000,
        )
        page.wait_for_function(
            "() => Number(document.getElementById('events').textContent.split(' / ')[0]) > 0",
            timeout=30_000,
        )
        # A page opened now draws the scorer's recent past at once (the samples it keeps),
        # not "collecting data…" until a few polls have passed.
        wait_for(
            lambda: len(http_json(f"{base}/console/state", token=READ_TOKEN)[1]["history"]) >= 4,
            60,
            "four samples",
            every=1.0,
        )
        page.reload()
        page.wait_for_selector("#console:not([hidden])")
        throughput = page.evaluate(CHART_POINTS, "#chart-throughput")
        assert throughput.keys() == {"in", "out"} and min(throughput.values()) >= 2, throughput
        lag = page.evaluate(CHART_POINTS, "#chart-lag")
        assert lag.keys() >= {"scorer", "trainer"} and min(lag.values()) >= 2, lag
        ticks = page.eval_on_selector_all(
            "#chart-lag text.tick", "ts => ts.map(t => t.textContent)"
        )
        assert len(ticks) >= 2 and len(set(ticks)) == len(ticks), ticks
        # Consumer lag: a row per partition for the scorers' group and the trainer's.
        lag_roles = page.eval_on_selector_all(
            "#lag tbody tr", "rs => rs.map(r => r.dataset.role + ':' + r.dataset.partition)"
        )
        assert sorted(lag_roles) == sorted(
            f"{role}:{p}" for role in ("scorer", "trainer") for p in range(s.partitions)
        )
        rows = page.eval_on_selector_all(
            "#versions tbody tr", "rs => rs.map(r => r.dataset.version)"
        )
        assert rows == [str(v2), str(v1)]
        assert page.locator("#chart-versions rect.bar").count() == 2
        assert page.locator("#chart-versions rect.bar.current").get_attribute(
            "data-version"
        ) == str(v2)
        # v1's own evaluation (hit@10 0.25, written in its metadata) is in its row; v2's
        # row has the outcome of the experiment it served in as champion.
        assert "0.2500" in page.text_content(f"#versions tr[data-version='{v1}']")
        assert page.text_content(
            f"#versions tr[data-version='{v2}'] .outcome[data-experiment='{decided}']"
        ).startswith("stop as champion · Δhit@10 -0.3000 [")

        # Promote v1 from the page: a confirmation, then the scorer serves v1, pinned.
        page.click(f"#versions tr[data-version='{v1}'] button.promote")
        page.wait_for_function(
            f"() => document.getElementById('served-version').textContent === 'v{v1}'",
            timeout=30_000,
        )
        assert dialogs and f"Serve version {v1}" in dialogs[-1]
        assert store.current_version() == v1 and store.is_pinned()
        assert http_json(f"{base}/recommendations/u1", token=READ_TOKEN)[1]["model_version"] == v1
        assert "pinned" in page.text_content("#pin-state")

        # Follow brings v2 back; rollback from there serves v1 again.
        page.click("#follow")
        page.wait_for_function(
            f"() => document.getElementById('served-version').textContent === 'v{v2}'",
            timeout=30_000,
        )
        assert store.current_version() == v2 and not store.is_pinned()
        page.click("#rollback")
        page.wait_for_function(
            f"() => document.getElementById('served-version').textContent === 'v{v1}'",
            timeout=30_000,
        )
        assert len(dialogs) == 3 and "Roll back" in dialogs[-1]
        assert store.current_version() == v1 and store.is_pinned()
        assert http_json(f"{base}/recommendations/u1", token=READ_TOKEN)[1]["model_version"] == v1
        # Served quality per version: v2 served the first views (hits counted under it).
        page.wait_for_function(
            f"() => document.querySelector(\"#versions tr[data-version='{v2}'] td:nth-child(9)\")"
            ".textContent !== '\u2013'",  # an en dash: none yet
            timeout=30_000,
        )

        shot = os.environ.get("STREAMREC_CONSOLE_SCREENSHOT")
        if shot:
            page.wait_for_timeout(45_000)  # more points on the charts
            page.screenshot(path=shot, full_page=True)
        assert errors == []
    finally:
        stop.set()
        feeder.join(30)
        assert scorer.stop() == 0, scorer.output()[-3000:]
    log = scorer.output()
    # Each action from the page was recorded with the token's name.
    assert (
        f"model_action action=promote by=api:ops model={s.model_name} "
        f"namespace={s.model_name} current={v1}"
    ) in log
    assert "model_action action=rollback by=api:ops" in log
    assert "model_action action=follow by=api:ops" in log
    assert ADMIN_TOKEN not in log


def test_console_opened_with_the_token_in_its_address(
    settings: Settings, store: SnapshotStore, tmp_path: Path, browser_page: Any
) -> None:
    """``/console#token=<token>`` shows the dashboard, not the token form, and the token
    leaves the address bar (it stays in the tab, as a typed one does)."""
    page = browser_page
    version = store.publish(popularity_on("A"))
    s = with_tokens(settings)
    base = f"http://127.0.0.1:{s.web_port}"
    env = {**os.environ, **s.to_env(), "STREAMREC_LOG_LEVEL": "warning"}
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    scorer = ChildProcess.streamrec(["scorer"], env, tmp_path / "scorer.log")
    try:
        wait_assigned(s, scorer)
        page.goto(f"{base}/console#token={READ_TOKEN}")
        page.wait_for_selector("#console:not([hidden])")
        assert page.is_hidden("#token-form")
        page.wait_for_function(
            f"() => document.getElementById('served-version').textContent === 'v{version}'"
        )
        assert page.url == f"{base}/console"  # the token is out of the address bar
        assert page.evaluate("() => sessionStorage.getItem('streamrec.token')") == READ_TOKEN
        page.reload()  # the tab keeps it
        page.wait_for_selector("#console:not([hidden])")

        # A wrong one is refused like a typed one; other fragment parameters stay.
        page.click("#sign-out")
        page.goto("about:blank")  # else only the fragment changes: the page stays
        page.goto(f"{base}/console#token=not-a-token-0123456789&view=lag")
        page.wait_for_selector("#token-form:not([hidden])")
        assert page.text_content("#token-error") == "That token was not accepted."
        assert page.url == f"{base}/console#view=lag"
        assert errors == []
    finally:
        assert scorer.stop() == 0, scorer.output()[-3000:]
    assert READ_TOKEN not in scorer.output()


def test_charts_draw_the_history_at_once_on_readable_axes(
    settings: Settings, browser_page: Any
) -> None:
    """The page as the scorer serves it (the state built by the scorer's own code, from a
    runtime against the test's Redis, with an hour of samples), in a browser that asks a
    stand-in origin: on its first render the charts have every sample, and axes show
    distinct round numbers; the tick function is the page's own (niceTicks)."""
    import asyncio
    import json
    from concurrent.futures import ThreadPoolExecutor

    from streams.scorer import console
    from streams.scorer.console_history import CAPACITY, History, Sample

    history = History()
    start = time.time() - CAPACITY * 5.0
    for i in range(CAPACITY + 10):  # more than it keeps: the oldest ten are gone
        history.add(
            Sample(
                t=start + i * 5.0,
                events_in=40 * i,
                events_out=40 * i,
                dead_letters={},
                version=1,
                judged=i,
                hit=0.4,
                mrr=0.2,
                age_s=30.0,
                lag={"scorer": i % 2, "trainer": 0},  # a lag of 0 or 1 record
            )
        )

    async def ready() -> tuple[dict[str, Any], int]:
        return {"status": "ok", "model_version": 1, "assigned_partitions": 1}, 200

    runtime = ScorerRuntime(settings)
    state = console.state(runtime, settings, ready, history=history)
    with ThreadPoolExecutor(1) as thread:  # playwright's loop runs in this one
        full = thread.submit(asyncio.run, state).result()
    asked: list[str] = []

    def serve(route: Any) -> None:
        url = route.request.url
        asked.append(url)
        path = url.split("streamrec.test", 1)[1]
        if path == "/console":
            page_html = console.asset("index.html").replace("__AUTH__", "none")
            route.fulfill(body=page_html, content_type="text/html", headers=console._HEADERS)
        elif path.startswith("/console/assets/"):
            name = path.rsplit("/", 1)[1]
            route.fulfill(
                body=console.asset(name),
                content_type=console.ASSETS[name],
                headers=console._HEADERS,
            )
        else:  # /console/state; later polls (?since=) get no new samples
            body = full if path == "/console/state" else {**full, "history": []}
            route.fulfill(body=json.dumps(body), content_type="application/json")

    page = browser_page
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.route("http://streamrec.test/**", serve)
    page.goto("http://streamrec.test/console")
    page.wait_for_selector("#console:not([hidden])")
    # First render: an hour of points (one rate fewer than samples), not "collecting".
    assert page.evaluate(CHART_POINTS, "#chart-throughput") == {
        "in": CAPACITY - 1,
        "out": CAPACITY - 1,
    }
    assert page.evaluate(CHART_POINTS, "#chart-lag") == {"scorer": CAPACITY, "trainer": CAPACITY}
    tick_texts = "ts => ts.map(t => t.textContent)"
    assert page.eval_on_selector_all("#chart-lag text.tick", tick_texts) == ["0", "1"]
    assert page.eval_on_selector_all("#chart-throughput text.tick", tick_texts) == [
        "0",
        "2",
        "4",
        "6",
        "8",
    ]
    assert page.eval_on_selector_all("#chart-quality text.tick", tick_texts) == [
        "0",
        "0.1",
        "0.2",
        "0.3",
        "0.4",
    ]
    # A flat zero (no dead letters): still an axis to read.
    assert page.eval_on_selector_all("#chart-dlq text.tick", tick_texts) == [
        "0",
        "0.25",
        "0.50",
        "0.75",
        "1.00",
    ]
    page.wait_for_timeout(3500)  # the next poll asks only for newer samples
    assert any("/console/state?since=" in url for url in asked), asked

    def ticks(lo: float, hi: float, integer: bool) -> list[float]:
        return list(page.evaluate("([lo, hi, i]) => niceTicks(lo, hi, i).ticks", [lo, hi, integer]))

    def labels(lo: float, hi: float, integer: bool) -> list[str]:
        return list(
            page.evaluate(
                "([lo, hi, i]) => { const s = niceTicks(lo, hi, i);"
                " return tickLabels(s.ticks, s.step); }",
                [lo, hi, integer],
            )
        )

    assert ticks(0, 1, True) == [0, 1]  # not 0, 1, 1
    assert ticks(0, 0, True) == [0, 1]  # a flat zero
    assert ticks(0, 7, True) == [0, 2, 4, 6, 8]
    assert ticks(0, 0.5, True) == [0, 1]  # counts never get fractional ticks
    assert ticks(0, 0.6, False) == [0, 0.2, 0.4, 0.6]
    assert labels(0, 1234567, True) == ["0", "0.5M", "1.0M", "1.5M"]
    assert labels(0, 150000, True) == ["0", "50k", "100k", "150k"]
    assert labels(0, 1000, True) == ["0", "250", "500", "750", "1000"]
    assert labels(0, 0.0123, False) == ["0", "0.005", "0.010", "0.015"]
    for lo, hi, integer in [(0, 3, True), (0, 1e9, True), (0, 42.5, False), (0, 1e-6, False)]:
        shown = labels(lo, hi, integer)
        assert len(set(shown)) == len(shown), shown
        got = ticks(lo, hi, integer)
        assert got[0] <= lo and got[-1] >= hi and 2 <= len(got) <= 6, got
    assert errors == []
