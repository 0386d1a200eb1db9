"""Fuzz the model-file loaders with the key known (defence in depth: a leaked key).

A scorer or a trainer reads snapshots, deltas and batch layer files from Redis after
checking their MAC; an attacker holding the key can sign anything. So this harness signs
the fuzzer's bytes with the test key and aims past the MAC, into the manifest, the
safetensors and each model's ``from_state``. The first byte of an input picks a mode:

* 0-3, 6: the rest is a 4-byte big-endian manifest length, the manifest (JSON) and the
  tensors (safetensors); the harness frames them as a format 2 file and signs it. Mode 0
  is :func:`load_snapshot`, 1 :func:`read_meta`, 2 :func:`read_delta` then
  :func:`apply_delta` to a held snapshot of the delta's class, 3 :func:`load_batch_layer`,
  6 :func:`load_snapshot` with pickle allowed. Modes 2 and 3 also write the content hash
  the loader expects into the manifest (the key's holder could compute it too).
* 4, 5: the rest is the whole file before the MAC (prefix included: format 1 too); mode 4
  tries every loader without pickle, 5 :func:`load_snapshot` with pickle allowed.

Only :class:`~online_model.errors.SnapshotError` (what every caller catches) may come
out, and nothing may be unpickled unless pickle is allowed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import hmac
import json
import pickle
import struct
from collections.abc import Iterator
from typing import Any

from tests.fuzz.harness import check, instrumented, main

with instrumented(__name__):
    import online_model.persist.snapshot as snapshot_module
    from online_model.errors import SnapshotError
    from online_model.models.covisit import Covisitation
    from online_model.models.hybrid import Hybrid
    from online_model.models.popularity import DecayedPopularity
    from online_model.persist.batch_layer_file import load_batch_layer
    from online_model.persist.snapshot import (
        FORMAT_VERSION,
        MAGIC,
        Snapshot,
        SnapshotMeta,
        dump_snapshot,
        load_snapshot,
        read_meta,
    )
    from online_model.persist.snapshot_delta import DeltaLink, apply_delta, read_delta
    from online_model.state import canonical_json

ALLOWED: tuple[type[BaseException], ...] = (SnapshotError,)

KEY = b"fuzz-test-key"
_LENGTHS = struct.Struct(">IQ")
MODES = 7


def sign(unsigned: bytes) -> bytes:
    """``unsigned`` followed by its MAC under the test key."""
    return unsigned + hmac.new(KEY, unsigned, hashlib.sha256).digest()


def frame(manifest: bytes, tensors: bytes) -> bytes:
    """A signed format 2 file of ``manifest`` and ``tensors``."""
    prefix = MAGIC + bytes([FORMAT_VERSION]) + _LENGTHS.pack(len(manifest), len(tensors))
    return sign(prefix + manifest + tensors)


def split(rest: bytes) -> tuple[bytes, bytes]:
    """Inverse of :func:`join`: the manifest and the tensors of an input's body."""
    n = int.from_bytes(rest[:4], "big") if len(rest) >= 4 else 0
    body = rest[4:]
    n = min(n, len(body))
    return body[:n], body[n:]


def join(mode: int, manifest: bytes, tensors: bytes) -> bytes:
    """An input of ``mode`` 0-3 or 6 (for the seed corpus)."""
    return bytes([mode]) + len(manifest).to_bytes(4, "big") + manifest + tensors


def _with_content_hash(manifest: bytes, tensors: bytes, delta: bool) -> bytes:
    """``manifest`` with the content hash its loader checks (unchanged if it cannot)."""
    try:
        header = json.loads(manifest)
        section = header["model"]
        digest = hashlib.sha256(canonical_json(section))
        digest.update(tensors)
        value = digest.hexdigest()
        if delta:
            previous = bytes.fromhex(header["delta"]["previous_content_hash"])
            value = hashlib.sha256(previous + bytes.fromhex(value)).hexdigest()
        header["meta"]["content_hash"] = value
        return json.dumps(header).encode()
    except Exception:
        return manifest


#: What the held snapshots (and the seed corpus' models) learned.
VIEWS = [(f"u{i % 3}", p) for i, p in enumerate(["home", "news", "sport", "home", "news"])]


def held_snapshots() -> dict[str, Snapshot]:
    """A loaded full snapshot of each model class that takes deltas, by class name."""
    held = {}
    for model in (Covisitation(), DecayedPopularity(), Hybrid()):
        for user, page in VIEWS:
            model.learn_one(user, page)
        data = dump_snapshot(Snapshot(SnapshotMeta("fuzz", version=1), model), KEY)
        snap = load_snapshot(data, KEY)
        assert snap.image is not None
        held[snap.image.class_name] = snap
    return held


HELD = held_snapshots()


def _held_for(delta: Any) -> Snapshot | None:
    """The held snapshot the delta names as its previous version (same class)."""
    base = HELD.get(delta.image.class_name)
    if base is None:
        return None
    link = delta.link
    meta = dataclasses.replace(
        base.meta,
        model_name=delta.meta.model_name,
        version=link.previous_version,
        content_hash=link.previous_content_hash,
    )
    held_link = None
    if link.sequence > 1:
        held_link = DeltaLink(
            link.base_version,
            link.base_content_hash,
            link.previous_version - 1,
            "",
            link.sequence - 1,
        )
    elif (link.base_version, link.base_content_hash) != (meta.version, meta.content_hash):
        return None
    return Snapshot(meta, base.model, base.trainer_state, image=base.image, link=held_link)


class _PickleGuard:
    """While an input runs: fail it if anything is unpickled while pickle is not allowed.
    (Installed per input, so importing this module changes nothing for other tests.)"""

    allowed = False

    def __init__(self) -> None:
        self.restricted = snapshot_module.restricted_loads
        self.loads = pickle.loads

    def _restricted(self, data: bytes) -> Any:
        assert self.allowed, "unpickled without allow_pickle"
        return self.restricted(data)

    def _loads(self, *args: Any, **kwargs: Any) -> Any:
        assert self.allowed, "pickle.loads without allow_pickle"
        return self.loads(*args, **kwargs)

    @contextlib.contextmanager
    def active(self, allowed: bool) -> Iterator[None]:
        self.allowed = allowed
        snapshot_module.restricted_loads = self._restricted
        pickle.loads = self._loads
        try:
            yield
        finally:
            snapshot_module.restricted_loads = self.restricted
            pickle.loads = self.loads


GUARD = _PickleGuard()


def one_input(data: bytes) -> None:
    if not data:
        return
    mode = data[0] % MODES
    with GUARD.active(allowed=mode in (5, 6)):
        _load(mode, data[1:])


def _load(mode: int, rest: bytes) -> None:
    if mode in (4, 5):
        file = sign(rest)
        if mode == 5:
            load_snapshot(file, KEY, allow_pickle=True)
            return
        for load in (load_snapshot, read_delta, load_batch_layer):
            with contextlib.suppress(*ALLOWED):
                load(file, KEY)
        return
    manifest, tensors = split(rest)
    if mode in (2, 3):
        manifest = _with_content_hash(manifest, tensors, delta=mode == 2)
    file = frame(manifest, tensors)
    if mode == 0:
        load_snapshot(file, KEY)
    elif mode == 1:
        read_meta(file, KEY)
    elif mode == 2:
        delta = read_delta(file, KEY)
        held = _held_for(delta)
        if held is not None:
            after = apply_delta(held, delta)
            assert after.image is not None and after.link == delta.link
    elif mode == 3:
        load_batch_layer(file, KEY)
    else:
        load_snapshot(file, KEY, allow_pickle=True)


def run(data: bytes) -> None:
    check(one_input, ALLOWED, data)


if __name__ == "__main__":
    main(one_input, ALLOWED)
