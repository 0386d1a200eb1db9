"""The signed snapshot format: a model, the trainer's state and the offsets it consumed.

Layout (all of it covered by the MAC; docs/model-format.md has every byte)::

    b"SRSNAP" | format version (1 byte) | header length (4 bytes, big endian)
    | [format 2: body length (8 bytes, big endian)]
    | header (UTF-8 JSON) | body | HMAC-SHA256 (32 bytes) over everything before it

Format 2, written by default: the header is the manifest ``{"meta", "model",
"trainer_state"}`` (all JSON) and the body a safetensors file of the model's named
arrays and string tables (:mod:`online_model.persist.model_file`). The fixed-size prefix gives
every length, so a file is checked to be complete without parsing any of it. Built-in models
load without ``pickle``. Models without a pickle-free form (user River models) are stored
as a pickle inside the tensors, and both writing and reading those need the operator's
``STREAMREC_ALLOW_PICKLE=1``.

Format 1, read for upgrades (and written only on request): the header is
``{"meta", "body_encoding": "raw"|"zlib", "body_length"}`` and the body a pickle of
``{"model": <model pickle>, "trainer_state": {...}}``. Loading one needs
``STREAMREC_ALLOW_PICKLE=1``; its metadata can be read without.

Trust rules, in order: the fixed prefix is checked (magic, format version, lengths), then
the MAC is compared with :func:`hmac.compare_digest`; only then is the header parsed and,
for :func:`load_snapshot`, the body decoded. A pickle, where allowed, goes through an
unpickler that refuses every class outside a short allow-list (defence in depth: a leaked
key must not mean remote code execution).

``content_hash`` is the SHA-256 of the model's canonical bytes (format 2: equal models
give equal hashes in every process; format 1 hashed the pickle, which could differ across
processes for models holding sets).

>>> from online_model.models.popularity import DecayedPopularity
>>> model = DecayedPopularity()
>>> model.learn_one("u1", "p1")
>>> data = dump_snapshot(Snapshot(SnapshotMeta("demo", events_seen=1), model), b"key")
>>> data[:7]
b'SRSNAP\\x02'
>>> load_snapshot(data, b"key").model.n_events_learned
1
>>> load_snapshot(data, b"other-key")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
online_model.errors.SnapshotVerificationError: snapshot MAC does not match: ...
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import logging
import pickle
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

from online_model.base import Recommender
from online_model.errors import (
    ConfigurationError,
    SnapshotFormatError,
    SnapshotVerificationError,
)
from online_model.persist.model_file import (
    ALLOW_PICKLE_HINT,
    ModelImage,
    canonical_json,
    decode_image,
    decode_model,
    encode_model,
    standalone_safetensors,
)
from online_model.persist.pickles import restricted_loads
from online_model.state import ModelState

logger = logging.getLogger(__name__)

MAGIC = b"SRSNAP"
#: What :func:`dump_snapshot` writes: a JSON manifest and safetensors, no pickle.
FORMAT_VERSION = 2
#: The pickle format of earlier releases, still read (behind STREAMREC_ALLOW_PICKLE).
LEGACY_FORMAT_VERSION = 1
READABLE_VERSIONS = (LEGACY_FORMAT_VERSION, FORMAT_VERSION)
_PREFIX = struct.Struct(">6sBI")  # magic, format version, header length
_LENGTHS_V2 = struct.Struct(">IQ")  # after magic and version: manifest and tensors length
_PREFIX_V2_SIZE = 7 + _LENGTHS_V2.size
_MAC_SIZE = 32
_MIN_SIZE = _PREFIX.size + _MAC_SIZE
#: Compress the body with zlib level 1 only when it saves at least this share of bytes.
_MIN_SAVING = 0.1

#: Types of SnapshotMeta's scalar fields, checked when one is read from a file.
_META_TYPES: dict[str, type | tuple[type, ...]] = {
    "model_name": str,
    "version": int,
    "created_at": (int, float),
    "events_seen": int,
    "origin": str,
    "model_class": str,
    "content_hash": str,
}

#: Used when STREAMREC_SNAPSHOT_KEY is empty and STREAMREC_INSECURE_DEV=1. It is public,
#: so snapshots signed with it prove nothing.
INSECURE_DEV_KEY = b"streamrec-insecure-dev-key-do-not-use-in-production"


@dataclass(frozen=True)
class SnapshotMeta:
    """What a snapshot is, readable without unpickling the model.

    ``offsets`` maps topic -> partition -> the NEXT offset to consume (Kafka commit
    semantics). ``version`` is assigned by the store when it publishes (0 before).
    """

    model_name: str
    version: int = 0
    created_at: float = 0.0
    events_seen: int = 0
    origin: str = "trainer"
    model_class: str = ""
    offsets: dict[str, dict[int, int]] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    content_hash: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["offsets"] = {
            topic: {str(p): int(o) for p, o in parts.items()}
            for topic, parts in self.offsets.items()
        }
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SnapshotMeta:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}  # newer writers may add fields
        values["offsets"] = {
            str(topic): {int(p): int(o) for p, o in parts.items()}
            for topic, parts in (data.get("offsets") or {}).items()
        }
        values["metrics"] = {str(k): float(v) for k, v in (data.get("metrics") or {}).items()}
        values["extra"] = dict(data.get("extra") or {})
        for name, kind in _META_TYPES.items():  # what the readers of a meta compare and format
            value = values.get(name)
            if name in values and (not isinstance(value, kind) or isinstance(value, bool)):
                raise TypeError(f"meta {name} is a {type(value).__name__}")
        return cls(**values)

    @classmethod
    def from_json(cls, text: str | bytes) -> SnapshotMeta:
        return cls.from_dict(json.loads(text))


@dataclass
class Snapshot:
    """A model with its metadata and whatever else the trainer needs to resume.

    A loaded snapshot of a built-in model also keeps ``image``, the state it was built
    from (what a delta applies to), and, when it was materialised from deltas, ``link``
    (:class:`online_model.persist.snapshot_delta.DeltaLink`: its base and position in the chain).
    """

    meta: SnapshotMeta
    model: Recommender
    trainer_state: dict[str, Any] = field(default_factory=dict)
    image: ModelImage | None = field(default=None, compare=False, repr=False)
    link: Any = None


# -- keys -----------------------------------------------------------------------------------
def signing_key(key: str, insecure_dev: bool) -> bytes:
    """The HMAC key for snapshots.

    Parameters
    ----------
    key
        The value of ``STREAMREC_SNAPSHOT_KEY``.
    insecure_dev
        ``STREAMREC_INSECURE_DEV``: allow a public development key when ``key`` is empty.

    Raises
    ------
    ConfigurationError
        ``key`` is empty and ``insecure_dev`` is false.
    """
    if key:
        return key.encode("utf-8")
    if insecure_dev:
        logger.warning(
            "snapshot_key=INSECURE_DEV_KEY reason=STREAMREC_SNAPSHOT_KEY_unset "
            "msg='snapshots are signed with a public key; anyone can forge them. "
            "Development only.'"
        )
        return INSECURE_DEV_KEY
    raise ConfigurationError(
        "STREAMREC_SNAPSHOT_KEY is not set; set it, or STREAMREC_INSECURE_DEV=1 for local "
        "development only"
    )


def pickle_allowed(allow_pickle: bool | None = None) -> bool:
    """Whether pickles may be written and read: only when the caller says so (streamrec's
    processes pass ``STREAMREC_ALLOW_PICKLE``, which :mod:`streams.settings` reads; this
    package reads no environment)."""
    return bool(allow_pickle)


def _mac(key: bytes, data: bytes | memoryview) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


# -- write ----------------------------------------------------------------------------------
def dump_snapshot(
    snap: Snapshot,
    key: bytes,
    *,
    format_version: int = FORMAT_VERSION,
    allow_pickle: bool | None = None,
    state: ModelState | None = None,
) -> bytes:
    """Serialise and sign ``snap``; ``model_class`` and ``content_hash`` are filled in.

    Parameters
    ----------
    format_version
        2 (default), or 1 to write the legacy pickle format (for compatibility tests).
    allow_pickle
        Whether a model without a pickle-free form may be stored as a pickle (default:
        no; streamrec passes its ``STREAMREC_ALLOW_PICKLE`` setting).
    state
        The model's ``state_arrays()`` when the caller already has it (format 2 only).

    Raises
    ------
    ConfigurationError
        The model needs pickle and pickle is not allowed.
    SnapshotFormatError
        ``trainer_state`` is not JSON, or ``format_version`` is unknown.
    """
    if format_version == LEGACY_FORMAT_VERSION:
        return _dump_v1(snap, key)
    if format_version != FORMAT_VERSION:
        raise SnapshotFormatError(f"cannot write snapshot format version {format_version}")
    encoded = encode_model(snap.model, pickle_allowed(allow_pickle), state)
    meta = dataclasses.replace(
        snap.meta, model_class=encoded.model_class, content_hash=encoded.content_hash
    )
    try:
        trainer_state = json.loads(canonical_json(snap.trainer_state))
    except (TypeError, ValueError) as exc:
        raise SnapshotFormatError(f"trainer state must be JSON: {exc}") from exc
    return sign_v2(
        {"meta": meta.to_dict(), "model": encoded.section, "trainer_state": trainer_state},
        encoded.tensors,
        key,
    )


def sign_v2(manifest: dict[str, Any], tensors: bytes, key: bytes) -> bytes:
    """A format 2 file: prefix, canonical JSON ``manifest``, ``tensors``, and the MAC."""
    text = canonical_json(manifest)
    prefix = MAGIC + bytes([FORMAT_VERSION]) + _LENGTHS_V2.pack(len(text), len(tensors))
    unsigned = b"".join((prefix, text, tensors))
    return unsigned + _mac(key, unsigned)


def check_storable(model: Recommender, allow_pickle: bool | None = None) -> None:
    """Raise :class:`ConfigurationError` now if ``model`` could only be stored as a pickle
    and pickle is not allowed (a trainer checks before it learns anything)."""
    encode_model(model, pickle_allowed(allow_pickle))


def _dump_v1(snap: Snapshot, key: bytes) -> bytes:
    """Format 1: the model pickled on its own, inside a pickled body."""
    model_bytes = pickle.dumps(snap.model, protocol=5)
    cls = type(snap.model)
    meta = dataclasses.replace(
        snap.meta,
        model_class=f"{cls.__module__}.{cls.__qualname__}",
        content_hash=hashlib.sha256(model_bytes).hexdigest(),
    )
    body = pickle.dumps({"model": model_bytes, "trainer_state": snap.trainer_state}, protocol=5)
    encoding = "raw"
    packed = zlib.compress(body, 1)
    if len(packed) <= len(body) * (1 - _MIN_SAVING):
        body, encoding = packed, "zlib"
    header = json.dumps(
        {"meta": meta.to_dict(), "body_encoding": encoding, "body_length": len(body)},
        sort_keys=True,
        separators=(",", ":"),
    ).encode("utf-8")
    unsigned = _PREFIX.pack(MAGIC, LEGACY_FORMAT_VERSION, len(header)) + header + body
    return unsigned + _mac(key, unsigned)


# -- read -----------------------------------------------------------------------------------
def verified_parts(data: bytes, key: bytes) -> tuple[int, dict[str, Any], memoryview]:
    """Check the prefix and the MAC; return the format version, the parsed header and
    the body."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise SnapshotFormatError(f"a snapshot is bytes, got {type(data).__name__}")
    view = memoryview(data)
    if len(view) < _MIN_SIZE:
        raise SnapshotFormatError(f"truncated: {len(view)} bytes is shorter than any snapshot")
    if bytes(view[:6]) != MAGIC:
        raise SnapshotFormatError("not a streamrec snapshot (bad magic)")
    version = view[6]
    if version == FORMAT_VERSION:
        return version, *_verified_v2(view, key)
    if version == LEGACY_FORMAT_VERSION:
        return version, *_verified_v1(view, key)
    raise SnapshotFormatError(
        f"unknown snapshot format version {version} (this streamrec reads "
        f"{', '.join(map(str, READABLE_VERSIONS))})"
    )


def _verified_v2(view: memoryview, key: bytes) -> tuple[dict[str, Any], memoryview]:
    """Format 2: lengths from the fixed prefix, then the MAC, and only then any parsing."""
    if len(view) < _PREFIX_V2_SIZE + _MAC_SIZE:
        raise SnapshotFormatError(f"truncated: {len(view)} bytes is shorter than any snapshot")
    manifest_len, tensors_len = _LENGTHS_V2.unpack_from(view, 7)
    body_start = _PREFIX_V2_SIZE + manifest_len
    expected = body_start + tensors_len + _MAC_SIZE
    if len(view) != expected:
        raise SnapshotFormatError(
            f"truncated or padded: {len(view)} bytes, the prefix declares {expected}"
        )
    signed, mac = view[:-_MAC_SIZE], view[-_MAC_SIZE:]
    if not hmac.compare_digest(_mac(key, signed), bytes(mac)):
        raise SnapshotVerificationError("snapshot MAC does not match: wrong key or altered bytes")
    try:
        header = json.loads(bytes(view[_PREFIX_V2_SIZE:body_start]))
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deeply
        raise SnapshotFormatError(f"bad snapshot manifest: {exc!r}") from exc
    if not isinstance(header, dict) or not isinstance(header.get("meta"), dict):
        raise SnapshotFormatError("bad snapshot manifest: no meta object")
    return header, signed[body_start:]


def _verified_v1(view: memoryview, key: bytes) -> tuple[dict[str, Any], memoryview]:
    _, _, header_len = _PREFIX.unpack_from(view)
    body_start = _PREFIX.size + header_len
    if body_start > len(view) - _MAC_SIZE:
        raise SnapshotFormatError(f"truncated: header of {header_len} bytes does not fit")
    signed, mac = view[:-_MAC_SIZE], view[-_MAC_SIZE:]
    if not hmac.compare_digest(_mac(key, signed), bytes(mac)):
        _raise_if_truncated(view, body_start)
        raise SnapshotVerificationError("snapshot MAC does not match: wrong key or altered bytes")
    try:
        header = json.loads(bytes(view[_PREFIX.size : body_start]))
        meta_dict = header["meta"]
        encoding = header["body_encoding"]
        body_length = int(header["body_length"])
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise SnapshotFormatError(f"bad snapshot header: {exc!r}") from exc
    body = signed[body_start:]
    if (
        len(body) != body_length
        or encoding not in ("raw", "zlib")
        or not isinstance(meta_dict, dict)
    ):
        raise SnapshotFormatError("bad snapshot header: body length or encoding do not match")
    return header, body


def _raise_if_truncated(view: memoryview, body_start: int) -> None:
    """Format 1, after a MAC mismatch: say "truncated" when the (untrusted) header shows
    it. Only a diagnostic: the bytes are refused either way, and nothing is unpickled.
    Format 2 needs no such guess: its prefix declares every length."""
    try:
        declared = int(json.loads(bytes(view[_PREFIX.size : body_start]))["body_length"])
    except Exception:
        return
    actual = len(view) - body_start - _MAC_SIZE
    if declared != actual:
        raise SnapshotFormatError(
            f"truncated or padded: body is {actual} bytes, header declares {declared}"
        )


def meta_from(header: dict[str, Any]) -> SnapshotMeta:
    try:
        return SnapshotMeta.from_dict(header["meta"])
    # AttributeError: offsets or metrics not an object; OverflowError: a number too large
    except (ValueError, KeyError, TypeError, AttributeError, OverflowError) as exc:
        raise SnapshotFormatError(f"bad snapshot metadata: {exc!r}") from exc


def read_meta(data: bytes, key: bytes) -> SnapshotMeta:
    """Verify ``data`` and return its metadata without decoding the model."""
    _, header, _ = verified_parts(data, key)
    return meta_from(header)


def load_snapshot(
    data: bytes, key: bytes, allow_pickle: bool | None = None, build: bool = True
) -> Snapshot:
    """Verify ``data``, then decode it.

    Parameters
    ----------
    allow_pickle
        Whether a pickled model (format 1, or a format 2 user model) may be unpickled,
        with the allow-listed unpickler (default: no; streamrec passes its
        ``STREAMREC_ALLOW_PICKLE`` setting).
    build
        Build the model from its state (default). False: a model stored as arrays comes
        back as its state (``image``) and a blank model of its class and parameters
        (:meth:`ModelImage.blank`), for a reader that needs only the state, such as the
        merger of trainer shards; building is O(model) in Python.

    Raises
    ------
    SnapshotVerificationError
        The MAC does not match (wrong key, altered bytes).
    SnapshotFormatError
        Truncated, bad magic, unknown format version, bad header, tensors that do not
        fit the model, a refused class, or a pickle while pickle is not allowed.
    """
    version, header, body = verified_parts(data, key)
    meta = meta_from(header)
    allowed = pickle_allowed(allow_pickle)
    if version == LEGACY_FORMAT_VERSION:
        if not allowed:
            raise SnapshotFormatError(
                f"snapshot {meta.model_name} version {meta.version} is in format 1, a "
                "pickle; refused. Republish it in format 2 (streamrec replay), or "
                + ALLOW_PICKLE_HINT
            )
        return _load_v1(header, body, meta)
    section = header.get("model")
    image = None
    if isinstance(section, dict) and section.get("encoding") == "arrays":
        image = decode_image(section, bytes(body))
        model = image.build() if build else image.blank()
    else:
        model = decode_model(section, bytes(body), allowed, restricted_loads)
    return Snapshot(meta=meta, model=model, trainer_state=trainer_state_of(header), image=image)


def trainer_state_of(header: dict[str, Any]) -> dict[str, Any]:
    """The ``trainer_state`` object of a verified manifest."""
    state = header.get("trainer_state") or {}
    if not isinstance(state, dict):
        raise SnapshotFormatError("snapshot trainer_state is not an object")
    return state


def _load_v1(header: dict[str, Any], body: memoryview, meta: SnapshotMeta) -> Snapshot:
    raw = bytes(body)
    if header["body_encoding"] == "zlib":
        try:
            raw = zlib.decompress(raw)
        except zlib.error as exc:
            raise SnapshotFormatError(f"snapshot body does not decompress: {exc}") from exc
    outer = restricted_loads(raw)
    if not isinstance(outer, dict) or not isinstance(outer.get("model"), bytes):
        raise SnapshotFormatError("snapshot body is not {model, trainer_state}")
    model = restricted_loads(outer["model"])
    if not isinstance(model, Recommender):
        raise SnapshotFormatError(f"snapshot model is a {type(model).__name__}, not a Recommender")
    state = outer.get("trainer_state") or {}
    if not isinstance(state, dict):
        raise SnapshotFormatError("snapshot trainer_state is not a dict")
    return Snapshot(meta=meta, model=model, trainer_state=state)


def export_safetensors(data: bytes, key: bytes, allow_pickle: bool | None = None) -> bytes:
    """The model of a verified snapshot as one plain ``.safetensors`` file (manifest in its
    metadata, see :func:`online_model.persist.model_file.standalone_safetensors`).

    A format-1 snapshot is loaded (which needs ``allow_pickle``) and converted first.

    Raises
    ------
    SnapshotError
        The snapshot does not verify, or its model has no pickle-free form.
    """
    version, header, body = verified_parts(data, key)
    if version == LEGACY_FORMAT_VERSION:
        snap = load_snapshot(data, key, allow_pickle)
        try:
            data = dump_snapshot(snap, key, allow_pickle=False)
        except ConfigurationError as exc:
            raise SnapshotFormatError(f"cannot export: {exc}") from exc
        version, header, body = verified_parts(data, key)
    model = header.get("model")
    if not isinstance(model, dict) or model.get("encoding") != "arrays":
        cls = model.get("class") if isinstance(model, dict) else None
        raise SnapshotFormatError(
            f"cannot export: the snapshot holds a pickled {cls}, which has no arrays"
        )
    return standalone_safetensors(header, bytes(body))
