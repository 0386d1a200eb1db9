"""The trainer's side of the catalog: pages gone for good leave the model.

The trainer follows the compacted ``pages`` topic like a scorer (from the start at boot,
then live: :class:`~streams.catalog.follower.CatalogFollower`), for two things:

- its quality estimate judges lists filtered as scorers serve them (the
  :class:`~online_model.catalog.Catalog` the follower fills is handed to
  :class:`~streams.trainer.quality_estimate.RollingHitRate`);
- a page **deleted** (a tombstone) or **expired** (its ``expires_at`` passed) is final:
  :class:`CatalogSync` has the model forget it (:mod:`online_model.models.forgetting`), so it
  stops taking room and leaves the next snapshot. A **hidden** page (``available=false``,
  ``published_at`` ahead) is reversible and stays in the model; scorers filter it.

The follower's thread only records what changed (:meth:`CatalogSync.observe`); the
trainer's thread calls :meth:`CatalogSync.prune` once per poll, which returns at once
unless something changed, a page expired, or a sweep is due. Forgetting costs one pass
over the model's rows and user buffers whatever the number of pages (~0.1-0.2 s for
30-45k pages on two loaded cores), so changes are gathered and forgotten at most once
every ``batch_s``: a steady trickle of deletions costs under a tenth of its time. Views
of a deleted page that still arrive are learned like any other; every ``sweep_s`` the
model forgets every page the catalog holds as deleted or expired again, so they do not
stay.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from online_model.models.forgetting import can_forget, forget_pages

log = logging.getLogger(__name__)

#: Seconds between two sweeps of every deleted or expired page (see the module docstring).
SWEEP_S = 60.0
#: Seconds at least between two forgets (changes in between are gathered).
BATCH_S = 2.0


class CatalogSync:
    """Deleted and expired pages, as the follower reports them; forgotten by the model."""

    def __init__(self, sweep_s: float = SWEEP_S, batch_s: float = BATCH_S) -> None:
        self.sweep_s = sweep_s
        self.batch_s = batch_s
        self._next_prune = 0.0
        self._lock = threading.Lock()
        self._gone: set[str] = set()  # deleted or expired: what the model must not hold
        self._pending: set[str] = set()  # gone since the last prune
        self._expires: dict[str, int] = {}  # page -> its record's expires_at (epoch ms)
        self._expiry: list[
            tuple[int, str]
        ] = []  # heap of (expires_at, page); stale entries skipped
        self._next_sweep = 0.0
        self.changed = False  # set by the follower's thread, read without the lock
        self.pages_forgotten = 0
        self.unsupported_logged = False

    # -- the follower's thread -------------------------------------------------------------
    def observe(self, page_id: str, record: Mapping[str, Any] | None) -> None:
        """One record of ``pages`` was applied: None is a tombstone."""
        with self._lock:
            expires_at = None if record is None else record.get("expires_at")
            if record is None:
                self._gone.add(page_id)
                self._pending.add(page_id)
            else:
                # A page back in the catalog is served again; what the model had
                # forgotten, it learns anew from the views that come.
                self._gone.discard(page_id)
                self._pending.discard(page_id)
            if expires_at is None:
                self._expires.pop(page_id, None)
            else:
                self._expires[page_id] = expires_at
                heapq.heappush(self._expiry, (expires_at, page_id))
            self.changed = True

    def gone(self) -> frozenset[str]:
        """Pages the catalog holds as deleted or expired (as of the last prune)."""
        with self._lock:
            return frozenset(self._gone)

    # -- the trainer's thread --------------------------------------------------------------
    def prune(self, model: object) -> bool:
        """Make ``model`` forget the pages gone since the last call (all of them when a
        sweep is due); True when it forgot any (a snapshot should follow)."""
        now = time.monotonic()
        expiry = self._expiry
        now_ms = int(time.time() * 1000)
        if now < self._next_prune:
            return False
        if not self.changed and now < self._next_sweep and not (expiry and expiry[0][0] <= now_ms):
            return False
        with self._lock:
            self.changed = False
            while expiry and expiry[0][0] <= now_ms:
                expires_at, page = heapq.heappop(expiry)
                if self._expires.get(page) == expires_at:  # else a later record moved it
                    del self._expires[page]
                    self._gone.add(page)
                    self._pending.add(page)
            if now >= self._next_sweep:
                pages = set(self._gone)
                self._next_sweep = now + self.sweep_s
            else:
                pages = self._pending
            self._pending = set()
        if not pages:
            return False
        self._next_prune = now + self.batch_s
        if not can_forget(model):
            if not self.unsupported_logged:
                log.warning(
                    "model_cannot_forget class=%s: deleted pages stay in its snapshots "
                    "(scorers still never serve them)",
                    type(model).__name__,
                )
                self.unsupported_logged = True
            return False
        started = time.perf_counter()
        forgotten = forget_pages(model, pages) or 0
        if forgotten:
            self.pages_forgotten += forgotten
            log.info(
                "catalog_pages_forgotten pages=%d checked=%d seconds=%.3f",
                forgotten,
                len(pages),
                time.perf_counter() - started,
            )
        return forgotten > 0
