"""The model a scorer serves, and how it is swapped for a newer snapshot.

Swapping is one reference assignment of an immutable (model, version) pair, done between
batches on the event loop; a batch picks the pair up once, so it is scored and stamped by
one model. A snapshot that fails verification or loading is rejected and counted; the
model already held keeps serving. A delta version is applied to the snapshot held when
it follows it (the store reads only the deltas after it), else materialised from its
base (:meth:`~streams.state.snapshot_store.SnapshotStore.load`). Before any snapshot
exists the holder serves a decayed popularity it learns from the stream itself, so a
new deployment answers at once.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

from online_model.base import Recommender
from online_model.errors import SnapshotError
from online_model.models.popularity import DecayedPopularity

log = logging.getLogger(__name__)


class SnapshotSource(Protocol):
    def current_version(self) -> int | None: ...

    def load(self, version: int, held: Any = None) -> Any: ...


@dataclass(frozen=True)
class Served:
    """The model in service: ``version`` 0 is the built-in cold-start popularity."""

    model: Recommender
    version: int
    loaded_at: float
    created_at: float | None = None
    model_class: str = ""
    #: The loaded snapshot, which the next delta applies to (None for the fallback).
    snapshot: Any = None

    @property
    def is_fallback(self) -> bool:
        return self.version == 0


class ModelHolder:
    """Holds the served model; :meth:`refresh` swaps in a newer verified snapshot."""

    def __init__(self, fallback: Recommender | None = None) -> None:
        self.fallback = fallback or DecayedPopularity()
        self.current = Served(self.fallback, 0, time.time(), None, "cold-start popularity")
        self.rejected = 0
        self.swaps = 0
        self.last_error: str | None = None
        self._rejected_versions: set[int] = set()
        self._lock = threading.Lock()

    def observe(self, user: str, page: str, ts_ms: int) -> None:
        """Let the cold-start model learn while no snapshot is served."""
        if self.current.is_fallback:
            self.fallback.learn_one(user, page, x={"ts": ts_ms})

    def adopt(self, other: ModelHolder) -> None:
        """Serve what ``other`` holds from now on (a promoted challenger's model), and
        follow its namespace: versions it refused stay refused."""
        with self._lock:
            if other.current.is_fallback:  # nothing there yet: our own cold start serves
                self.current = Served(self.fallback, 0, time.time(), None, "cold-start popularity")
            else:
                self.current = other.current
            self._rejected_versions = set(other._rejected_versions)
            self.swaps += 1
        log.info(
            "model_adopted version=%d class=%s", self.current.version, self.current.model_class
        )

    #: Versions one :meth:`refresh` follows when newer ones keep arriving while it loads.
    MAX_FOLLOW = 3

    def refresh(self, source: SnapshotSource) -> bool:
        """Load the store's current version if it differs from ours; True if swapped.

        After a swap ``current`` is read again, and a version published meanwhile is
        loaded too: the pub/sub hint of a version published during a load is not acted
        on by the caller (a refresh is already running), and the next poll may be a
        whole ``model_poll_interval`` away.

        Blocking (Redis + unpickling): call it from a worker thread, not the event loop.
        """
        swapped = False
        with self._lock:
            for _ in range(self.MAX_FOLLOW):
                if not self._load_current(source):
                    break
                swapped = True
        return swapped

    def _load_current(self, source: SnapshotSource) -> bool:
        version = source.current_version()
        if version is None or version == self.current.version:
            return False
        if version in self._rejected_versions:
            return False
        try:
            snapshot = source.load(version, held=self.current.snapshot)
        except SnapshotError as exc:
            self.rejected += 1
            self._rejected_versions.add(version)
            self.last_error = f"version {version}: {exc}"
            log.error(
                "snapshot_rejected version=%d error=%s kept_version=%d",
                version,
                exc,
                self.current.version,
            )
            return False
        meta = snapshot.meta
        self.current = Served(
            snapshot.model,
            int(meta.version or version),
            time.time(),
            meta.created_at,
            meta.model_class,
            snapshot,
        )
        self.swaps += 1
        log.info(
            "model_swapped version=%d class=%s events_seen=%s delta=%s",
            self.current.version,
            meta.model_class,
            meta.events_seen,
            getattr(snapshot, "link", None) is not None,
        )
        return True
