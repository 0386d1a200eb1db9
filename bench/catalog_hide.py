"""How long a hidden page can still be served: from the broker's ack of the hide record
to the moment no path recommends the page.

One scorer (``python -m streams.cli scorer``) on the bench's broker and Redis serves its
cold-start popularity, in which ``hot`` (viewed by every user) is everyone's top page.
Each trial hides ``hot`` with one Page record and takes the broker's acknowledgement
time from the producer's delivery report (``t_ack``); meanwhile the bench asks
``GET /recommendations`` and produces a page view by a new user every ``probe_every_s``.

- REST: the first answer without ``hot`` (the time its response arrived) - ``t_ack``.
- topic: the ``produced_at`` of the first Recommendation without ``hot`` after which no
  answer carries it - ``t_ack`` (the scorer stamps ``produced_at`` when it scores).
- both: the larger of the two, per trial: after it, no path served ``hot``.

``batch-score`` reads the catalog to its end when it starts, so any batch started after
the ack leaves the page out (tested in ``tests/integration/test_catalog.py``); it has no
delay to measure. Then ``hot`` is shown again and the next trial waits until it is back.
Both figures are upper bounds by up to one probe interval. Wall clocks of the bench and
the scorer are the same machine's.
"""

from __future__ import annotations

import json
import logging
import statistics
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from streams.catalog.publish import publish_pages
from streams.io.codec import PAGE, PAGE_VIEW, RECOMMENDATION, AvroCodec
from streams.io.producer import page_view
from streams.io.topics import ensure_topics
from streams.services.processes import ChildProcess, wait_for
from streams.settings import Settings

from .harness import TopicTail, child_env
from .report import percentile

log = logging.getLogger(__name__)

HOT = "hot"


class Answers(threading.Thread):
    """Reads the recommendations topic: event_id -> (produced_at ms, hot served?)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(daemon=True)
        self.tail = TopicTail(settings, settings.topic_recommendations)
        self.codec = AvroCodec.bundled(RECOMMENDATION)
        self.seen: dict[str, tuple[int, bool]] = {}
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            for message in self.tail.poll(0.05):
                rec = self.codec.decode(message.value())
                hot = any(item["page_id"] == HOT for item in rec["items"])
                self.seen[rec["event_id"]] = (rec["produced_at"], hot)
        self.tail.close()


def _rest_pages(url: str) -> list[str]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return [item["page_id"] for item in json.loads(response.read())["items"]]


def _hide(settings: Settings, producer: Producer, codec: AvroCodec, available: bool) -> float:
    """Send one Page record for ``hot``; the wall-clock time its ack was reported."""
    acked: list[float] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            raise RuntimeError(f"catalog record refused: {err}")
        acked.append(time.time())

    record = {"page_id": HOT, "available": available}
    producer.produce(
        settings.topic_pages, codec.encode(record), HOT.encode(), on_delivery=delivered
    )
    producer.flush(30)
    if not acked:
        raise RuntimeError("catalog record not acknowledged within 30 s")
    return acked[0]


def measure(settings: Settings, logs: Path, trials: int, probe_every_s: float) -> dict[str, Any]:
    ensure_topics(settings)
    publish_pages(settings, [{"page_id": HOT}])
    scorer = ChildProcess.streamrec(["scorer"], child_env(settings), logs / "catalog-scorer.log")
    views = AvroCodec.bundled(PAGE_VIEW)
    producer = Producer(settings.producer_config(**{"linger.ms": 0}))
    url = f"http://127.0.0.1:{settings.web_port}/recommendations/nobody"
    answers = Answers(settings)
    answers.start()
    try:
        wait_for(lambda: scorer.check() or _rest_pages(url) is not None, 90, "scorer REST")
        now = int(time.time() * 1000)
        for u in range(30):
            for page in (HOT, f"p{u % 15}"):
                pv = page_view(f"fan{u}", page, now)
                producer.produce(
                    settings.topic_page_views, views.encode(pv), pv["user_id"].encode()
                )
        producer.flush(30)
        wait_for(lambda: _rest_pages(url)[:1] == [HOT], 90, "hot on top")
        pages = AvroCodec.bundled(PAGE)
        results = []
        for trial in range(trials):
            results.append(
                _trial(settings, producer, views, pages, url, answers, trial, probe_every_s)
            )
            log.info("trial %d: %s", trial, results[-1])
    finally:
        answers.stopping.set()
        scorer.stop()
    return _summary(results, probe_every_s)


def _trial(
    settings: Settings,
    producer: Producer,
    views: AvroCodec,
    pages: AvroCodec,
    url: str,
    answers: Answers,
    trial: int,
    probe_every_s: float,
) -> dict[str, float]:
    probes: list[str] = []

    def probe() -> None:
        # A new user viewing a new page: its list is the popularity top, where hot leads.
        tag = uuid.uuid4().hex[:8]
        pv = page_view(f"probe-{tag}", f"seen-{tag}", int(time.time() * 1000))
        pv["event_id"] = f"t{trial}-{len(probes)}"
        probes.append(pv["event_id"])
        producer.produce(settings.topic_page_views, views.encode(pv), pv["user_id"].encode())
        producer.poll(0)

    t_ack = _hide(settings, producer, pages, available=False)
    rest_gone = None
    deadline = time.time() + 30
    while time.time() < deadline:
        probe()
        if HOT not in _rest_pages(url):
            rest_gone = time.time()
            break
        time.sleep(probe_every_s)
    until = time.time() + 0.5  # probes after the change, so the topic shows it too
    while time.time() < until:
        probe()
        time.sleep(probe_every_s)
    producer.flush(30)
    wait_for(lambda: all(p in answers.seen for p in probes), 60, "every probe answered")
    stamped = sorted(answers.seen[p] for p in probes)
    last_hot = max((t for t, hot in stamped if hot), default=None)
    after = [t for t, hot in stamped if not hot and (last_hot is None or t > last_hot)]
    if rest_gone is None or not after:
        raise RuntimeError(f"trial {trial}: hot still served 30 s after the hide")
    rest_s = rest_gone - t_ack
    topic_s = after[0] / 1000 - t_ack
    _hide(settings, producer, pages, available=True)
    wait_for(lambda: HOT in _rest_pages(url), 30, "hot back")
    time.sleep(0.2)
    return {"rest_s": rest_s, "topic_s": topic_s, "both_s": max(rest_s, topic_s)}


def _summary(results: list[dict[str, float]], probe_every_s: float) -> dict[str, Any]:
    out: dict[str, Any] = {"trials": len(results), "probe_every_s": probe_every_s}
    for path in ("rest_s", "topic_s", "both_s"):
        values = [r[path] for r in results]
        out[path] = {
            "p50": round(statistics.median(values), 4),
            "p99": round(percentile(values, 99), 4),
            "max": round(max(values), 4),
            "min": round(min(values), 4),
        }
    out["runs"] = [{k: round(v, 4) for k, v in r.items()} for r in results]
    return out
