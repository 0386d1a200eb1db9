"""Loading a log of page views (CSV or JSONL) into the page-views topic."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from typing import Any

from online_model.data.events_file import PageView
from streams.io.codec import page_view_codec
from streams.io.producer import DeliveryReport, ReliableProducer, page_view
from streams.settings import Settings


def event_ids(views: Iterable[PageView]) -> Iterable[str]:
    """Deterministic ids: producing the same file twice gives the same event_ids, so
    consumers that drop duplicates by event_id see each row once."""
    seen: dict[bytes, int] = {}
    for view in views:
        identity = f"{view.user_id}\x1f{view.page_id}\x1f{view.ts_ms}\x1f{view.session_id or ''}"
        digest = hashlib.sha1(identity.encode()).digest()
        occurrence = seen.get(digest, 0)
        seen[digest] = occurrence + 1
        yield hashlib.sha1(digest + occurrence.to_bytes(4, "big")).hexdigest()[:24]


def produce_log(
    settings: Settings,
    views: list[PageView],
    topic: str,
    rate: float = 0.0,
    on_progress: Callable[[int], Any] | None = None,
    producer: ReliableProducer | None = None,
    flush_timeout: float = 120.0,
    stop: Callable[[], object] | None = None,
) -> DeliveryReport:
    """Send ``views`` keyed by user_id at up to ``rate`` per second (0: no limit).

    ``stop`` is checked before each view and during the final flush; when it returns
    true, sending ends and the report says what was delivered, failed and not confirmed.
    Every librdkafka call made here is bounded (at most a second), so it is checked
    often.
    """
    codec = page_view_codec(settings)
    producer = producer or ReliableProducer(settings)
    started = time.monotonic()
    stopped = stop or (lambda: False)
    sent = 0
    for i, (view, event_id) in enumerate(zip(views, event_ids(views), strict=True)):
        while rate > 0 and not stopped():
            delay = started + i / rate - time.monotonic()
            if delay <= 0:
                break
            producer.poll(min(delay, 0.2))  # short waits: a stop request is seen quickly
        if stopped():
            break
        record = page_view(
            view.user_id, view.page_id, view.ts_ms, view.session_id, event_id=event_id
        )
        if not producer.produce(
            topic, codec.encode(record), key=view.user_id.encode(), timestamp_ms=view.ts_ms
        ):
            break
        sent += 1
        if on_progress is not None and sent % 100 == 0:
            on_progress(100)
    if on_progress is not None:
        on_progress(sent % 100)
    return producer.flush(flush_timeout, stop=stop)
