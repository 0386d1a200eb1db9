"""Writing the catalog: pages onto the compacted ``pages`` topic, keyed by page_id.

Every write is a whole ``Page`` record (compaction keeps only the latest per key), so
hiding a page first reads its current record and writes it back with ``available`` set:
its categories, dates and attributes survive; a page the topic has no record of is
refused unless the caller asks to create it. A write counts once the broker has
acknowledged it; scorers following the topic apply it as soon as they read it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from streams.catalog.follower import read_catalog
from streams.catalog.lookup import find_page
from streams.errors import ServiceError
from streams.io.codec import PAGE, AvroCodec
from streams.io.producer import DeliveryReport, ReliableProducer
from streams.io.topics import ensure_topics
from streams.settings import Settings


def publish_pages(
    settings: Settings,
    pages: Iterable[dict[str, Any] | tuple[str, None]],
    timeout: float = 60.0,
) -> DeliveryReport:
    """Send Page records (or ``(page_id, None)`` tombstones); raise unless all are acked."""
    ensure_topics(settings, [settings.topic_pages])
    codec = AvroCodec.bundled(PAGE, settings.schema_registry_url)
    producer = ReliableProducer(settings)
    for page in pages:
        if isinstance(page, tuple):
            key, value = page[0], None
        else:
            key, value = page["page_id"], codec.encode(page)
        producer.produce(settings.topic_pages, value, key=key.encode())
    report = producer.close(timeout)
    if report.failed or report.pending:
        raise ServiceError(
            f"{report.delivered} of {report.sent} catalog records acknowledged by the "
            f"broker ({report.failed} failed, {report.pending} unconfirmed): {report.errors}"
        )
    return report


def set_available(
    settings: Settings,
    page_id: str,
    available: bool,
    read_timeout: float = 30.0,
    create: bool = False,
) -> dict[str, Any]:
    """Hide or show ``page_id``, keeping the rest of its record; return what was written.

    A page the topic holds no record of (a typo, a page known only from page views, a
    deleted page) raises :class:`~streams.catalog.lookup.UnknownPage` and nothing is
    written, unless ``create``: then a record of just ``page_id`` and ``available`` is.
    """
    if not page_id.strip():
        raise ServiceError("a page id must not be empty")
    ensure_topics(settings, [settings.topic_pages])
    catalog = read_catalog(settings, read_timeout)
    record: dict[str, Any]
    if create and catalog.record(page_id) is None:
        record = {"page_id": page_id}
    else:
        record = find_page(catalog, page_id, settings.topic_pages)
    record["available"] = available
    publish_pages(settings, [record])
    return record
