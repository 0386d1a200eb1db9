"""The embedded broker only grows: a warning before that hurts.

Tansu 0.6's memory storage has no retention, no compaction and no working DeleteRecords
(README, "The embedded broker"), so nothing streamrec can do bounds what it holds; only a
restart empties it. What it holds costs memory, and CPU: every fetch that finds data lists
every record batch of the partition, so its CPU grows with the batches held times the
fetches per second. A trainer on the embedded broker watches both and logs a warning when
the broker's resident memory passes ``STREAMREC_BROKER_MEMORY_WARN_MB`` (then at each
doubling), and when it used more than :data:`CPU_WARN_SHARE` of a core over a minute
(then each time that share doubles), saying what to do.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from streams.services.embedded import EmbeddedServices, rss_mb
from streams.settings import Settings

log = logging.getLogger(__name__)

#: Seconds between two looks at the broker.
CHECK_EVERY_S = 60.0
#: The share of one core the broker may use over a check interval before a warning.
CPU_WARN_SHARE = 0.5
_WHAT_TO_DO = (
    "restart it to empty it (streamrec down && streamrec up: every topic and offset is "
    "lost) or run Apache Kafka (docker-compose.yml)"
)


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` (None when it cannot be read)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / 100
    except (OSError, ValueError, IndexError):
        return None


class EmbeddedBrokerWatch:
    """Warns when the embedded broker this process uses grows past its limits."""

    def __init__(self, settings: Settings, check_every_s: float = CHECK_EVERY_S) -> None:
        self.services = EmbeddedServices(settings)
        self.warn_mb = float(settings.broker_memory_warn_mb)
        self.warn_cpu = CPU_WARN_SHARE
        self.check_every_s = check_every_s
        self.warnings = 0
        self._last_cpu: tuple[float, float] | None = None  # (monotonic, CPU seconds)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="broker-watch", daemon=True)

    def check(self) -> tuple[float | None, float | None]:
        """Look once: the broker's resident MB and its share of a core since the last look
        (None, None when this is not the embedded broker)."""
        pid = self.services.running_broker_pid()
        if pid is None:
            return None, None
        return self._memory(pid), self._cpu(pid)

    def _memory(self, pid: int) -> float | None:
        rss = rss_mb(pid)
        if rss is not None and self.warn_mb > 0 and rss >= self.warn_mb:
            self.warnings += 1
            log.warning(
                "embedded_broker_memory rss_mb=%.0f pid=%d: the embedded broker keeps every "
                "record in memory and cannot drop old ones; %s. Next warning at %.0f MB",
                rss,
                pid,
                _WHAT_TO_DO,
                2 * self.warn_mb,
            )
            while rss >= self.warn_mb:
                self.warn_mb *= 2
        return rss

    def _cpu(self, pid: int) -> float | None:
        used, now = cpu_seconds(pid), time.monotonic()
        if used is None:
            return None
        last, self._last_cpu = self._last_cpu, (now, used)
        if last is None or now <= last[0]:
            return None
        share = (used - last[1]) / (now - last[0])
        if share >= self.warn_cpu:
            self.warnings += 1
            log.warning(
                "embedded_broker_load cpu_share=%.2f pid=%d: the embedded broker lists every "
                "record batch of a partition on each fetch, so its CPU grows with what it "
                "holds; lag and latency follow. %s",
                share,
                pid,
                _WHAT_TO_DO[0].upper() + _WHAT_TO_DO[1:],
            )
            while share >= self.warn_cpu:
                self.warn_cpu *= 2
        return share

    def _run(self) -> None:
        while not self._stop.wait(self.check_every_s):
            try:
                self.check()
            except Exception:  # a monitoring read must never take a trainer down
                log.exception("broker_watch_failed")

    def start(self) -> EmbeddedBrokerWatch:
        self.check()  # the first CPU reading, to compare the next with
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
