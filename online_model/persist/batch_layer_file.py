"""Batch layer files: a hybrid's item-item layer, signed and laid out like a snapshot.

``streamrec retrain --model hybrid`` fits the batch layer of
:class:`~online_model.models.hybrid.Hybrid` and publishes it as one of these; the trainer of a
hybrid loads it and swaps it into its model (:mod:`streams.trainer.batch_layer_watch`).
The file is format 2 (docs/model-format.md, "Batch layer files"): the same prefix, MAC,
manifest and safetensors as a snapshot, with ``"kind": "batch-layer"`` in the manifest
and the :class:`~online_model.models.itemitem.ItemItem` state as the model section. Its
``meta.offsets`` are the offsets it covers (the NEXT offset per partition), which the
trainer compares with its own before swapping the layer in.

A snapshot loader refuses these files (ItemItem is not a model it may build) and
:func:`load_batch_layer` refuses snapshots: neither can be served as the other.

>>> from online_model.models.itemitem import fit_item_item
>>> events = [("a", "x", 1), ("a", "y", 2), ("b", "x", 3), ("b", "y", 4)]
>>> layer = fit_item_item(events, l2=0.5, position={"views": {"0": 4}})
>>> data = dump_batch_layer(SnapshotMeta("demo", offsets={"views": {0: 4}}), layer, b"k")
>>> record = load_batch_layer(data, b"k")
>>> record.layer.pages, record.meta.offsets, record.layer.position
(['x', 'y'], {'views': {0: 4}}, {'views': {'0': 4}})
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from typing import Any

from online_model.errors import ModelError, SnapshotFormatError
from online_model.models.itemitem import ItemItem
from online_model.persist.model_file import state_from_tensors, state_tensors
from online_model.persist.snapshot import (
    FORMAT_VERSION,
    SnapshotMeta,
    meta_from,
    sign_v2,
    verified_parts,
)
from online_model.state import canonical_json, class_name

#: The manifest's ``kind`` of a batch layer file (a snapshot's manifest has none).
KIND = "batch-layer"
LAYER_CLASS = class_name(ItemItem)


@dataclass(frozen=True)
class BatchLayerRecord:
    """A verified batch layer: its metadata (``offsets``: what it covers) and the layer."""

    meta: SnapshotMeta
    layer: ItemItem


def json_offsets(offsets: dict[str, dict[Any, int]]) -> dict[str, dict[str, int]]:
    """Offsets as JSON holds them (partition numbers as strings): an ItemItem's position."""
    return {str(t): {str(p): int(o) for p, o in parts.items()} for t, parts in offsets.items()}


def dump_batch_layer(meta: SnapshotMeta, layer: ItemItem, key: bytes) -> bytes:
    """Sign ``layer`` with ``meta``; ``model_class``, ``events_seen`` and ``content_hash``
    are filled in. ``meta.offsets`` should be what ``layer.position`` records."""
    state = layer.state_arrays()
    tensors = state_tensors(state)
    section = {
        "class": LAYER_CLASS,
        "encoding": "arrays",
        "params": layer.params,
        "state": json_state(state.values),
    }
    digest = hashlib.sha256(canonical_json(section))
    digest.update(tensors)
    meta = dataclasses.replace(
        meta,
        model_class=LAYER_CLASS,
        events_seen=layer.n_events,
        content_hash=digest.hexdigest(),
    )
    manifest = {"kind": KIND, "meta": meta.to_dict(), "model": section, "trainer_state": {}}
    return sign_v2(manifest, tensors, key)


def json_state(values: dict[str, Any]) -> dict[str, Any]:
    """An ItemItem's values with a position of offsets in JSON form (string partitions)."""
    position = values.get("position")
    if isinstance(position, dict):
        return {**values, "position": json_offsets(position)}
    return values


def load_batch_layer(data: bytes, key: bytes) -> BatchLayerRecord:
    """Verify ``data`` (MAC first), then parse it as a batch layer.

    Raises
    ------
    SnapshotVerificationError
        The MAC does not match (wrong key, altered bytes).
    SnapshotFormatError
        Not a format 2 batch layer file, or its state does not make a layer.
    """
    version, header, body = verified_parts(data, key)
    if version != FORMAT_VERSION or header.get("kind") != KIND:
        raise SnapshotFormatError("not a batch layer file (a snapshot or another format)")
    meta = meta_from(header)
    section = header.get("model")
    if (
        not isinstance(section, dict)
        or section.get("class") != LAYER_CLASS
        or section.get("encoding") != "arrays"
    ):
        raise SnapshotFormatError(f"batch layer file does not hold an {LAYER_CLASS}")
    tensors = bytes(body)
    digest = hashlib.sha256(canonical_json(section))
    digest.update(tensors)
    if digest.hexdigest() != meta.content_hash:
        raise SnapshotFormatError("batch layer content hash does not match its contents")
    state = state_from_tensors(tensors, section.get("state"))
    try:
        layer = ItemItem.from_state(state)
    except (ModelError, KeyError, TypeError, ValueError) as exc:
        raise SnapshotFormatError(f"batch layer state does not fit an ItemItem: {exc}") from exc
    return BatchLayerRecord(meta, layer)
