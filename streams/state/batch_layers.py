"""Batch layers of a hybrid model in Redis: signed, versioned, the newest one named.

``streamrec retrain --model hybrid`` publishes the item-item batch layer it fits here;
the trainer of the hybrid (:mod:`streams.trainer.batch_layer_watch`) reads the newest one
and swaps it into its model, whose snapshots then carry it to the scorers. Keys, under
``streamrec:<model_name>:`` (:class:`~streams.state.keys.ModelKeys`):

``batch:<version>``
    A signed batch layer file (:mod:`online_model.persist.batch_layer_file`), verified on load.
``batch_seq``
    ``INCR`` counter handing out versions.
``batch_newest``
    The newest version (moves only forward); one ``GET`` tells a trainer whether there
    is something new.
``batch_versions``
    Sorted set of the kept versions; the newest ``keep`` are kept.

Redis connection failures surface as :class:`~streams.errors.StoreUnavailable`.
"""

from __future__ import annotations

import logging
import time
from typing import Any, cast

from online_model.errors import SnapshotError
from online_model.models.itemitem import ItemItem
from online_model.persist.batch_layer_file import (
    BatchLayerRecord,
    dump_batch_layer,
    json_offsets,
    load_batch_layer,
)
from online_model.persist.snapshot import SnapshotMeta
from streams.state.connection import is_cluster, redis_errors
from streams.state.keys import ModelKeys

logger = logging.getLogger(__name__)

# KEYS: body, newest, versions   ARGV: data, version, keep, body key prefix
_PUBLISH = """
redis.call('SET', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[2])
local newest = tonumber(redis.call('GET', KEYS[2]) or '0')
if tonumber(ARGV[2]) > newest then redis.call('SET', KEYS[2], ARGV[2]) end
local old = redis.call('ZRANGE', KEYS[3], 0, -tonumber(ARGV[3]) - 1)
for _, v in ipairs(old) do
  redis.call('DEL', ARGV[4] .. v)
  redis.call('ZREM', KEYS[3], v)
end
return #old
"""


class BatchLayerStore:
    """Versioned, signed batch layers of one model namespace (see the module docstring)."""

    def __init__(self, redis: Any, model_name: str, key: bytes, keep: int = 3) -> None:
        if keep < 1:
            raise ValueError(f"keep must be at least 1, got {keep}")
        self.redis = redis
        self.model_name = model_name
        self.keep = keep
        self.keys = ModelKeys(model_name, is_cluster(redis))
        self._key = key
        self.rejected = 0  # layers that failed verification, for metrics
        self._publish = redis.register_script(_PUBLISH)

    @redis_errors
    def publish(
        self,
        layer: ItemItem,
        offsets: dict[str, dict[Any, int]],
        *,
        origin: str = "retrain",
        extra: dict[str, Any] | None = None,
    ) -> int:
        """Sign and store ``layer``, which covers ``offsets`` (next offset per partition,
        what ``layer.position`` records), as the newest batch layer; return its version."""
        if json_offsets(offsets) != layer.position:
            raise ValueError("the layer's position is not the offsets it is published with")
        version = int(self.redis.incr(self.keys.batch_layer_seq))
        record = SnapshotMeta(
            model_name=self.model_name,
            version=version,
            created_at=time.time(),
            origin=origin,
            offsets={t: {int(p): int(o) for p, o in parts.items()} for t, parts in offsets.items()},
            extra=dict(extra or {}),
        )
        data = dump_batch_layer(record, layer, self._key)
        pruned = self._publish(
            keys=self.keys.batch_publish_group(version),
            args=[data, version, self.keep, self.keys.batch_layer_prefix],
        )
        logger.info(
            "batch layer published model=%s version=%d events=%d pages=%d bytes=%d pruned=%s",
            self.model_name,
            version,
            layer.n_events,
            layer.n_pages,
            len(data),
            pruned,
        )
        return version

    @redis_errors
    def newest_version(self) -> int | None:
        """The newest batch layer's version, or None before the first publish."""
        raw = self.redis.get(self.keys.batch_layer_newest)
        return None if raw is None else int(raw)

    @redis_errors
    def load(self, version: int) -> BatchLayerRecord:
        """Verify and load ``version``; :class:`SnapshotError` if missing or untrusted."""
        data = self.redis.get(self.keys.batch_layer(version))
        if data is None:
            raise SnapshotError(f"no batch layer {self.model_name} version {version}")
        try:
            record = load_batch_layer(cast(bytes, data), self._key)
            if record.meta.version != version or record.meta.model_name != self.model_name:
                raise SnapshotError(
                    f"key {self.keys.batch_layer(version)} holds {record.meta.model_name} "
                    f"batch layer version {record.meta.version}"
                )
        except SnapshotError as exc:
            self.rejected += 1
            logger.warning(
                "batch layer rejected model=%s version=%d error=%r",
                self.model_name,
                version,
                str(exc),
            )
            raise
        return record

    def load_newest(self) -> BatchLayerRecord | None:
        """The newest batch layer, or None when there is none."""
        version = self.newest_version()
        return None if version is None else self.load(version)
