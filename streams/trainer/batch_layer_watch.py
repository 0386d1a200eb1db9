"""The hybrid's trainer picks up new batch layers: loaded, checked, swapped in live.

``streamrec retrain --model hybrid`` publishes an item-item batch layer that covers the
log up to some offsets (:mod:`streams.state.batch_layers`). The trainer of a
:class:`~online_model.models.hybrid.Hybrid` calls :meth:`BatchLayerWatcher.check` from its loop;
at most every ``check_every`` seconds it reads the newest batch layer's version (one
``GET``) and, when it is new:

* waits while the trainer has not read the log up to the layer's offsets (a layer of
  events the online layer has not seen yet would be a fit of another log, see
  :meth:`Hybrid.set_batch_layer`), and swaps it in once it has;
* swaps it into the model with :meth:`~online_model.models.hybrid.Hybrid.set_batch_layer`,
  which replaces the item-item weights only: the online layer, the learned mix weights
  and the users' recent pages carry on, so nothing learned since the retrain's offsets is
  lost and nothing is relearned;
* skips a layer the model already holds (a restarted trainer resumes with it) and
  refuses one that does not verify or that is older than the one held (logged, counted).

The trainer then publishes a snapshot, which carries the batch layer to the scorers;
they hot-swap it as any snapshot. No restart anywhere.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis

from online_model.errors import ModelError, SnapshotError
from online_model.models.hybrid import Hybrid
from online_model.models.itemitem import ItemItem
from online_model.persist.batch_layer_file import BatchLayerRecord
from streams.errors import StoreUnavailable
from streams.records import Offsets
from streams.state.batch_layers import BatchLayerStore

logger = logging.getLogger(__name__)


def offsets_behind(read: Offsets, covered: Offsets) -> dict[str, dict[int, int]]:
    """Partitions where ``read`` (next offsets) has not reached ``covered``, with how far.

    >>> offsets_behind({"v": {0: 10, 1: 4}}, {"v": {0: 8, 1: 6, 2: 1}})
    {'v': {1: 2, 2: 1}}
    """
    behind: dict[str, dict[int, int]] = {}
    for topic, parts in covered.items():
        got = read.get(topic, {})
        for partition, offset in parts.items():
            missing = int(offset) - got.get(int(partition), 0)
            if missing > 0:
                behind.setdefault(topic, {})[int(partition)] = missing
    return behind


def same_layer(a: ItemItem | None, b: ItemItem) -> bool:
    """Whether ``a`` is (a copy of) the fit ``b``: same events, offsets, pages and weights."""
    if a is None:
        return False
    return (
        a.n_events == b.n_events
        and a.position == b.position
        and a.params == b.params
        and a.pages == b.pages
        and a.weight.tobytes() == b.weight.tobytes()
    )


class BatchLayerWatcher:
    """Swaps the newest published batch layer into a hybrid (see the module docstring).

    Attributes
    ----------
    swaps, refused, version
        Layers swapped in, layers refused, and the version swapped in last.
    """

    def __init__(self, store: BatchLayerStore, check_every: float = 1.0) -> None:
        self.store = store
        self.check_every = check_every
        self.swaps = 0
        self.refused = 0
        self.version: int | None = None
        self._next_check = 0.0
        self._settled: set[int] = set()  # versions swapped in, held already, or refused
        self._waiting: BatchLayerRecord | None = None  # loaded, for offsets not read yet

    def check(self, model: Any, offsets: Offsets) -> bool:
        """Swap the newest batch layer into ``model`` if it is due; True when swapped.

        ``offsets``: the next offsets the trainer reads (what its model has learned up to).
        Never raises for Redis or a bad layer: the trainer keeps learning either way.
        """
        if not isinstance(model, Hybrid):
            return False
        now = time.monotonic()
        if now < self._next_check:
            return False
        self._next_check = now + self.check_every
        record = self._newest()
        if record is None:
            return False
        version = record.meta.version
        behind = offsets_behind(offsets, record.meta.offsets)
        if behind:
            if self._waiting is None or self._waiting.meta.version != version:
                logger.info(
                    "batch layer waits for the trainer version=%d behind=%s", version, behind
                )
            self._waiting = record
            return False
        self._waiting = None
        self._settled.add(version)
        if same_layer(model.batch_layer, record.layer):
            self.version = version
            return False
        try:
            model.set_batch_layer(record.layer)
        except ModelError as exc:
            self.refused += 1
            logger.warning("batch layer refused version=%d error=%r", version, str(exc))
            return False
        self.swaps += 1
        self.version = version
        logger.info(
            "batch layer swapped in version=%d events=%d pages=%d online_events=%d",
            version,
            record.layer.n_events,
            record.layer.n_pages,
            model.n_events_learned,
        )
        return True

    def _newest(self) -> BatchLayerRecord | None:
        """The newest batch layer not settled yet (loaded once), or None."""
        version: int | None = None
        try:
            version = self.store.newest_version()
            if version is None or version in self._settled:
                return None
            waiting = self._waiting
            if waiting is not None and waiting.meta.version == version:
                return waiting
            return self.store.load(version)
        except (StoreUnavailable, redis.RedisError) as exc:  # down, or refused (ACL)
            logger.warning("batch layer not checked error=%r", str(exc))
        except SnapshotError as exc:  # logged and counted by the store
            if version is not None:
                self._settled.add(version)
            self.refused += 1
            logger.debug("batch layer skipped error=%r", str(exc))
        return None
