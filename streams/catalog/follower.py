"""Following the ``pages`` topic: the catalog a scorer filters with, kept current.

The follower reads every partition of the compacted topic from its beginning (no group
commits: every process needs the whole table, and compaction keeps it small), applies
each record to a :class:`~online_model.catalog.Catalog`, and then keeps reading, so a
page hidden on the topic stops being served as soon as the record arrives. It runs in a
thread of its own, so the scorer's event loop never waits on it.

``on_change(page_id, record)`` (record None for a tombstone), when given, is called in
the follower's thread after each record is applied: the trainer learns of deleted and
expiring pages that way (:mod:`streams.trainer.catalog_sync`).

"Loaded" means every partition was read up to the high watermark seen when reading
started, or nothing arrived for ``idle_s`` (a broker whose watermarks are approximate
cannot hold a scorer back for ever).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from online_model.catalog import Catalog
from online_model.catalog.fresh import FreshPages
from online_model.errors import InputError
from streams.errors import SchemaViolation, SerializationError, ServiceError
from streams.io.codec import PAGE, AvroCodec
from streams.io.event_source import KafkaEventSource
from streams.records import LogRecord
from streams.settings import Settings

log = logging.getLogger(__name__)


class CatalogFollower:
    """Reads the ``pages`` topic into ``catalog`` from the start, then live."""

    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        idle_s: float = 3.0,
        retry_s: float = 1.0,
        on_change: Callable[[str, Mapping[str, Any] | None], None] | None = None,
        group: str | None = None,
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.on_change = on_change
        #: Prefix of the (never committed) consumer group id; the scorer's by default.
        self.group = group or settings.scorer_group
        self.idle_s = idle_s
        self.retry_s = retry_s
        self.codec = AvroCodec.bundled(PAGE, settings.schema_registry_url)
        self.loaded = threading.Event()
        self.applied = 0
        self.refused = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> CatalogFollower:
        self._thread = threading.Thread(target=self._run, name="catalog-follower", daemon=True)
        self._thread.start()
        return self

    def wait_loaded(self, timeout: float) -> bool:
        """Block until the catalog was read to its end (True) or ``timeout`` passed."""
        return self.loaded.wait(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    # -- reading -------------------------------------------------------------------------
    def apply(self, record: LogRecord) -> None:
        """Apply one record; a record that does not decode is logged and skipped."""
        key = (record.key or b"").decode("utf-8", "replace")
        page: dict[str, Any] | None = None
        try:
            if record.value is None:
                if not key:
                    raise SchemaViolation("a tombstone without a key names no page")
                self.catalog.apply(key, None)
            else:
                page = self.codec.decode(record.value)
                if key != page["page_id"]:
                    # Compaction works by key: a record under another key would outlive
                    # the page's own records and tombstones.
                    raise SchemaViolation(f"key {key!r} is not the page_id {page['page_id']!r}")
                self.catalog.apply(key, page)
        except (SerializationError, InputError) as exc:
            self.refused += 1
            log.warning(
                "catalog_record_refused partition=%d offset=%d error=%s",
                record.partition,
                record.offset,
                exc,
            )
            return
        self.applied += 1
        if self.on_change is not None:
            self.on_change(key, page)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._follow()
            except ServiceError as exc:  # the topic is missing or the broker is away
                log.warning("catalog_follower_retry error=%s", exc)
                self._stop.wait(self.retry_s)
            except Exception:  # keep following: a scorer with a stale catalog beats none
                log.exception("catalog_follower_error")
                self._stop.wait(self.retry_s)

    def _follow(self) -> None:
        topic = self.settings.topic_pages
        # A group id of its own that nothing ever commits under: assignment is by hand.
        group = f"{self.group}-catalog-{uuid.uuid4().hex[:8]}"
        source = KafkaEventSource(self.settings, [topic], group_id=group, reader="catalog")
        try:
            source.assign({})
            ends = source.end_offsets().get(topic, {})
            remaining = {p: end for p, end in ends.items() if end > 0}
            last_record = time.monotonic()
            while not self._stop.is_set():
                records = source.poll(500, 0.1)
                for record in records:
                    self.apply(record)
                    if record.offset + 1 >= remaining.get(record.partition, 0):
                        remaining.pop(record.partition, None)
                now = time.monotonic()
                if records:
                    last_record = now
                if not self.loaded.is_set() and (not remaining or now - last_record > self.idle_s):
                    self.loaded.set()
                    log.info(
                        "catalog_loaded pages=%d records=%d refused=%d",
                        len(self.catalog),
                        self.applied,
                        self.refused,
                    )
        finally:
            source.close()


def new_catalog(settings: Settings) -> Catalog:
    """An empty catalog with the configured unknown-page policy, keeping new pages when
    lists give them places (``STREAMREC_FRESH_SLOTS``)."""
    fresh = None
    if settings.fresh_slots:
        fresh = FreshPages(int(settings.fresh_window_s * 1000), settings.fresh_max_views)
    return Catalog(settings.catalog_unknown, fresh)


def read_catalog(settings: Settings, timeout: float = 30.0) -> Catalog:
    """The catalog as the ``pages`` topic holds it now (read once, to its end)."""
    follower = CatalogFollower(settings, new_catalog(settings)).start()
    try:
        if not follower.wait_loaded(timeout):
            raise ServiceError(
                f"could not read topic {settings.topic_pages} within {timeout:.0f} s"
            )
    finally:
        follower.stop()
    return follower.catalog
