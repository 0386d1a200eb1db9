"""Delta snapshots: what changed since the previous snapshot, signed like a full one.

A delta is a format 2 file (:mod:`online_model.persist.snapshot`, same prefix and MAC) whose
manifest's model section has ``encoding: "delta"`` and which carries one more object,
``delta`` (:class:`DeltaLink`)::

    {"base_version": 40, "base_content_hash": "…",          the full snapshot it builds on
     "previous_version": 43, "previous_content_hash": "…",  the version it applies to
     "sequence": 4}                                          deltas since the base (1 = first)

A delta applies only to the snapshot it names as previous: the same version, the same
content hash, the same base, the sequence one lower, the same model name, class and
parameters. Anything else (a gap, a delta of another base, out of order, copied from
another model) is refused with :class:`SnapshotFormatError`.

``meta.content_hash`` of a delta chains: the SHA-256 of the previous content hash (its 32
bytes) followed by the SHA-256 of the delta's canonical model section and tensors. So it
names the model the chain builds, at a cost that grows with the delta, not with the model
(a full export of the same model has the plain content hash of a full file).

>>> from online_model.models.covisit import Covisitation
>>> from online_model.persist.snapshot import dump_snapshot, load_snapshot
>>> model = Covisitation()
>>> model.learn_one("u1", "home"); model.learn_one("u1", "news")
>>> data = dump_snapshot(Snapshot(SnapshotMeta("demo", version=1), model), b"k")
>>> full = load_snapshot(data, b"k")
>>> model.mark_published()
>>> model.learn_one("u1", "sports")
>>> link = ChainPosition.after(full.meta, None).next_link()
>>> data = dump_delta(SnapshotMeta("demo", version=2), model, model.state_delta(), link, {}, b"k")
>>> after = apply_delta(full, read_delta(data, b"k"))
>>> after.meta.version, after.link.sequence, after.model.n_events_learned
(2, 1, 3)
>>> apply_delta(after, read_delta(data, b"k"))  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
online_model.errors.SnapshotFormatError: delta version 2 applies to version 1 ..., not to ...
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from typing import Any

from online_model.base import Recommender
from online_model.errors import SnapshotFormatError
from online_model.persist.model_file import ModelImage, decode_image, encode_delta
from online_model.persist.snapshot import (
    FORMAT_VERSION,
    Snapshot,
    SnapshotMeta,
    meta_from,
    sign_v2,
    trainer_state_of,
    verified_parts,
)
from online_model.state import ModelState, canonical_json


@dataclass(frozen=True)
class DeltaLink:
    """Where a delta sits: its base (a full snapshot) and the version it applies to."""

    base_version: int
    base_content_hash: str
    previous_version: int
    previous_content_hash: str
    sequence: int

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> DeltaLink:
        try:
            link = cls(
                base_version=int(data["base_version"]),
                base_content_hash=str(data["base_content_hash"]),
                previous_version=int(data["previous_version"]),
                previous_content_hash=str(data["previous_content_hash"]),
                sequence=int(data["sequence"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise SnapshotFormatError(f"bad delta link: {exc!r}") from exc
        if link.sequence < 1:
            raise SnapshotFormatError(f"bad delta link: sequence {link.sequence}")
        return link


@dataclass(frozen=True)
class ChainPosition:
    """A published version seen as a place to chain the next delta to."""

    version: int
    content_hash: str
    base_version: int
    base_content_hash: str
    sequence: int  # deltas since the base: 0 for a full snapshot

    @classmethod
    def after(cls, meta: SnapshotMeta, link: DeltaLink | None) -> ChainPosition:
        """The position of a version with ``meta``, a delta when ``link`` is given."""
        if link is None:
            return cls(meta.version, meta.content_hash, meta.version, meta.content_hash, 0)
        return cls(
            meta.version,
            meta.content_hash,
            link.base_version,
            link.base_content_hash,
            link.sequence,
        )

    def next_link(self) -> DeltaLink:
        """The link of a delta published right after this version."""
        return DeltaLink(
            self.base_version,
            self.base_content_hash,
            self.version,
            self.content_hash,
            self.sequence + 1,
        )


@dataclass
class SnapshotDelta:
    """A verified, parsed delta file (not applied yet)."""

    meta: SnapshotMeta
    link: DeltaLink
    image: ModelImage  # the class, parameters and the changes (a ModelState)
    trainer_state: dict[str, Any]


def chain_hash(previous_content_hash: str, delta_hash: str) -> str:
    """``meta.content_hash`` of a delta (see the module docstring)."""
    try:
        previous = bytes.fromhex(previous_content_hash)
    except ValueError as exc:
        raise SnapshotFormatError(f"bad content hash {previous_content_hash!r}") from exc
    return hashlib.sha256(previous + bytes.fromhex(delta_hash)).hexdigest()


def dump_delta(
    meta: SnapshotMeta,
    model: Recommender,
    changes: ModelState,
    link: DeltaLink,
    trainer_state: dict[str, Any],
    key: bytes,
) -> bytes:
    """Sign a delta of ``model`` (``changes``: its :meth:`state_delta`) after ``link``'s
    previous version; ``meta.model_class`` and ``meta.content_hash`` are filled in."""
    encoded = encode_delta(model, changes)
    meta = dataclasses.replace(
        meta,
        model_class=encoded.model_class,
        content_hash=chain_hash(link.previous_content_hash, encoded.content_hash),
    )
    manifest = {
        "meta": meta.to_dict(),
        "model": encoded.section,
        "trainer_state": trainer_state,
        "delta": link.to_dict(),
    }
    return sign_v2(manifest, encoded.tensors, key)


def is_delta(header: dict[str, Any]) -> bool:
    """Whether a verified manifest is a delta's."""
    return "delta" in header


def read_delta(data: bytes, key: bytes) -> SnapshotDelta:
    """Verify ``data`` (MAC first) and parse it as a delta.

    Raises
    ------
    SnapshotVerificationError
        The MAC does not match.
    SnapshotFormatError
        Truncated, not a delta, or its content hash does not follow from its link.
    """
    version, header, body = verified_parts(data, key)
    if version != FORMAT_VERSION or not is_delta(header):
        raise SnapshotFormatError("not a delta snapshot")
    meta = meta_from(header)
    link = DeltaLink.from_dict(header["delta"])
    tensors = bytes(body)
    section = header.get("model")
    image = decode_image(section, tensors, encoding="delta")
    digest = hashlib.sha256(canonical_json(section))
    digest.update(tensors)
    if meta.content_hash != chain_hash(link.previous_content_hash, digest.hexdigest()):
        raise SnapshotFormatError(f"delta version {meta.version}: content hash does not chain")
    return SnapshotDelta(meta, link, image, trainer_state_of(header))


def apply_delta(held: Snapshot, delta: SnapshotDelta, build: bool = True) -> Snapshot:
    """The snapshot ``delta`` describes, built from ``held`` (left as it is); ``build``
    False: with a blank model beside its state
    (:func:`~online_model.persist.snapshot.load_snapshot`).

    Raises
    ------
    SnapshotFormatError
        ``delta`` does not apply to ``held`` (see the module docstring), or its arrays
        do not fit the model.
    """
    link, meta = delta.link, delta.meta
    image = held.image
    base = held.link
    held_base = (
        (held.meta.version, held.meta.content_hash)
        if base is None
        else (
            base.base_version,
            base.base_content_hash,
        )
    )
    held_sequence = 0 if base is None else base.sequence
    what = f"delta version {meta.version}"
    if (link.previous_version, link.previous_content_hash) != (
        held.meta.version,
        held.meta.content_hash,
    ):
        raise SnapshotFormatError(
            f"{what} applies to version {link.previous_version} "
            f"({link.previous_content_hash[:12]}), not to version {held.meta.version} "
            f"({held.meta.content_hash[:12]})"
        )
    if (link.base_version, link.base_content_hash) != held_base:
        raise SnapshotFormatError(
            f"{what} is for base version {link.base_version}, not {held_base[0]}"
        )
    if link.sequence != held_sequence + 1:
        raise SnapshotFormatError(
            f"{what} is delta {link.sequence} of its base; {held_sequence + 1} comes next"
        )
    if meta.model_name != held.meta.model_name:
        raise SnapshotFormatError(
            f"{what} is of model {meta.model_name!r}, not {held.meta.model_name!r}"
        )
    if not meta.version > held.meta.version:
        raise SnapshotFormatError(f"{what} is not newer than version {held.meta.version}")
    if image is None or image.cls is not delta.image.cls or image.params != delta.image.params:
        raise SnapshotFormatError(
            f"{what} is of a {delta.image.class_name} with other parameters or class than "
            f"version {held.meta.version}"
        )
    try:
        state = image.cls.apply_state_delta(image.state, delta.image.state)  # type: ignore[attr-defined]
    except SnapshotFormatError:
        raise
    except Exception as exc:  # the arrays do not fit the base: not usable
        raise SnapshotFormatError(
            f"{what} does not fit version {held.meta.version}: {exc!r}"
        ) from exc
    after = ModelImage(image.cls, image.params, state)
    model = after.build() if build else after.blank()
    return Snapshot(meta, model, delta.trainer_state, image=after, link=link)
