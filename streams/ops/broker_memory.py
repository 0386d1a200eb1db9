"""The embedded broker keeps every record in memory: a warning before that hurts.

Tansu 0.6's memory storage has no retention, no compaction and no working DeleteRecords
(README, "The embedded broker"), so nothing streamrec can do bounds what it holds; only a
restart empties it. A long-running trainer on the embedded broker watches the broker's
resident memory and logs a warning when it passes ``STREAMREC_BROKER_MEMORY_WARN_MB``,
and again at each doubling, saying what to do.
"""

from __future__ import annotations

import logging
import threading

from streams.ops.embedded import EmbeddedServices, rss_mb
from streams.settings import Settings

log = logging.getLogger(__name__)

#: Seconds between two looks at the broker's memory.
CHECK_EVERY_S = 60.0


class BrokerMemoryWatch:
    """Warns when the embedded broker this process uses grows past ``warn_mb``."""

    def __init__(self, settings: Settings, check_every_s: float = CHECK_EVERY_S) -> None:
        self.services = EmbeddedServices(settings)
        self.warn_mb = float(settings.broker_memory_warn_mb)
        self.check_every_s = check_every_s
        self.warnings = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="broker-memory", daemon=True)

    def check(self) -> float | None:
        """Look once; the broker's resident MB (None: not the embedded broker)."""
        pid = self.services.running_broker_pid()
        rss = None if pid is None else rss_mb(pid)
        if rss is not None and self.warn_mb > 0 and rss >= self.warn_mb:
            self.warnings += 1
            log.warning(
                "embedded_broker_memory rss_mb=%.0f pid=%d: the embedded broker keeps every "
                "record in memory and cannot drop old ones; restart it to empty it "
                "(streamrec down && streamrec up: every topic and offset is lost) or run "
                "Apache Kafka (docker-compose.yml). Next warning at %.0f MB",
                rss,
                pid,
                2 * self.warn_mb,
            )
            while rss >= self.warn_mb:
                self.warn_mb *= 2
        return rss

    def _run(self) -> None:
        while not self._stop.wait(self.check_every_s):
            try:
                self.check()
            except Exception:  # a monitoring read must never take a trainer down
                log.exception("broker_memory_check_failed")

    def start(self) -> BrokerMemoryWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
