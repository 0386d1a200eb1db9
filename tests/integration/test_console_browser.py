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
from streams.ops.processes import ChildProcess
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
