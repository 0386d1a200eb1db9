"""Loading a log of page views (CSV or JSONL) into the page-views topic."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from typing import Any

from online_model.data.events_file import PageView
from streams.io.producer import DeliveryReport, ReliableProducer, page_view
from streams.settings import Settings
from streams.wiring import page_view_codec


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
) -> DeliveryReport:
    """Send ``views`` keyed by user_id at up to ``rate`` per second (0: no limit)."""
    codec = page_view_codec(settings)
    producer = producer or ReliableProducer(settings)
    started = time.monotonic()
    for i, (view, event_id) in enumerate(zip(views, event_ids(views), strict=True)):
        if rate > 0:
            delay = started + i / rate - time.monotonic()
            if delay > 0:
                producer.poll(delay)
        record = page_view(
            view.user_id, view.page_id, view.ts_ms, view.session_id, event_id=event_id
        )
        producer.produce(
            topic, codec.encode(record), key=view.user_id.encode(), timestamp_ms=view.ts_ms
        )
        if on_progress is not None and i % 1000 == 999:
            on_progress(1000)
    if on_progress is not None:
        on_progress(len(views) % 1000)
    return producer.flush(flush_timeout)
