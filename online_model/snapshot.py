"""The signed snapshot format: a model, the trainer's state and the offsets it consumed.

Layout (all of it covered by the MAC)::

    b"SRSNAP" | format version (1 byte) | header length (4 bytes, big endian)
    | header (UTF-8 JSON: {"meta": ..., "body_encoding": "raw"|"zlib", "body_length": n})
    | body (pickle protocol 5 of {"model": <model pickle>, "trainer_state": {...}})
    | HMAC-SHA256 (32 bytes) over everything before it

Trust rules, in order: the fixed prefix is checked (magic, format version, lengths), then
the MAC is compared with :func:`hmac.compare_digest`; only then is the header parsed and,
for :func:`load_snapshot`, the body unpickled, and even then by an unpickler that refuses
every class outside a short allow-list (defence in depth: a leaked key must not mean
remote code execution).

The model is pickled on its own, so ``content_hash`` (its sha256) is equal for equal
models within one process; across processes it can differ when a model holds sets of
strings (Python randomises string hashes, hence set order).

>>> from online_model.popularity import DecayedPopularity
>>> model = DecayedPopularity()
>>> model.learn_one("u1", "p1")
>>> data = dump_snapshot(Snapshot(SnapshotMeta("demo", events_seen=1), model), b"key")
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
import io
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

logger = logging.getLogger(__name__)

MAGIC = b"SRSNAP"
FORMAT_VERSION = 1
_PREFIX = struct.Struct(">6sBI")  # magic, format version, header length
_MAC_SIZE = 32
_MIN_SIZE = _PREFIX.size + _MAC_SIZE
#: Compress the body with zlib level 1 only when it saves at least this share of bytes.
_MIN_SAVING = 0.1

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
        return cls(**values)

    @classmethod
    def from_json(cls, text: str | bytes) -> SnapshotMeta:
        return cls.from_dict(json.loads(text))


@dataclass
class Snapshot:
    """A model with its metadata and whatever else the trainer needs to resume."""

    meta: SnapshotMeta
    model: Recommender
    trainer_state: dict[str, Any] = field(default_factory=dict)


# -- allow-list -----------------------------------------------------------------------------
# Exactly the globals that pickles of the built-in models, of numpy arrays/scalars/random
# generators and of plain containers refer to under protocol 5 (proven sufficient and
# minimal in tests/unit/test_snapshot.py). Sets, frozensets, tuples and bytearrays need no
# global under protocol 5; the builtins listed are defaultdict factories and plain values.
# ``numpy.core`` is the numpy 1.x spelling of ``numpy._core``.
_NUMPY_ALIASES = {
    "numpy.core.multiarray": "numpy._core.multiarray",
    "numpy.core.numeric": "numpy._core.numeric",
}
_ALLOWED_GLOBALS = frozenset(
    {
        ("builtins", "dict"),
        ("builtins", "list"),
        ("builtins", "set"),
        ("builtins", "int"),
        ("builtins", "float"),
        ("builtins", "complex"),
        ("builtins", "slice"),
        ("collections", "OrderedDict"),
        ("collections", "defaultdict"),
        ("collections", "deque"),
        ("collections", "Counter"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy._core.numeric", "_frombuffer"),
        # numpy random generators (ImplicitMF samples negatives with one).
        ("numpy.random._pickle", "__bit_generator_ctor"),
        ("numpy.random._pickle", "__generator_ctor"),
        ("numpy.random._pickle", "__randomstate_ctor"),
        ("numpy.random.bit_generator", "SeedSequence"),
        ("numpy.random.bit_generator", "__pyx_unpickle_SeedSequence"),
        ("numpy.random._mt19937", "MT19937"),
        ("numpy.random._pcg64", "PCG64"),
        ("numpy.random._pcg64", "PCG64DXSM"),
        ("numpy.random._philox", "Philox"),
        ("numpy.random._sfc64", "SFC64"),
    }
)


def is_allowed_global(module: str, name: str) -> bool:
    """Whether a snapshot's pickle may refer to ``module.name`` (before importing it).

    River globals additionally have to turn out to be classes once resolved.
    """
    if (_NUMPY_ALIASES.get(module, module), name) in _ALLOWED_GLOBALS:
        return True
    if "." in name or name.startswith("__"):
        # Dotted names walk attributes (``os.path.join`` style); dunders reach internals.
        return False
    return module == "online_model" or module.startswith(("online_model.", "river."))


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only allow-listed globals."""

    def find_class(self, module: str, name: str) -> Any:
        if is_allowed_global(module, name):
            obj = super().find_class(module, name)
            if not module.startswith("river.") or isinstance(obj, type):
                return obj
        raise SnapshotFormatError(f"snapshot refers to {module}.{name}, which is not allowed")


def _restricted_loads(data: bytes) -> Any:
    try:
        return _RestrictedUnpickler(io.BytesIO(data)).load()
    except SnapshotFormatError:
        raise
    except Exception as exc:  # any unpickling failure means the bytes are not usable
        raise SnapshotFormatError(f"snapshot body does not unpickle: {exc!r}") from exc


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


def _mac(key: bytes, data: bytes | memoryview) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


# -- write ----------------------------------------------------------------------------------
def dump_snapshot(snap: Snapshot, key: bytes) -> bytes:
    """Serialise and sign ``snap``; ``model_class`` and ``content_hash`` are filled in."""
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
    unsigned = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(header)) + header + body
    return unsigned + _mac(key, unsigned)


# -- read -----------------------------------------------------------------------------------
def _verified_parts(data: bytes, key: bytes) -> tuple[dict[str, Any], memoryview]:
    """Check the prefix and the MAC; return the parsed header and the (encoded) body."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise SnapshotFormatError(f"a snapshot is bytes, got {type(data).__name__}")
    view = memoryview(data)
    if len(view) < _MIN_SIZE:
        raise SnapshotFormatError(f"truncated: {len(view)} bytes is shorter than any snapshot")
    magic, version, header_len = _PREFIX.unpack_from(view)
    if magic != MAGIC:
        raise SnapshotFormatError("not a streamrec snapshot (bad magic)")
    if version != FORMAT_VERSION:
        raise SnapshotFormatError(
            f"unknown snapshot format version {version} (this streamrec reads {FORMAT_VERSION})"
        )
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
    except (ValueError, KeyError, TypeError) as exc:
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
    """After a MAC mismatch, say "truncated" when the (untrusted) header shows it.

    Only a diagnostic: the bytes are refused either way, and nothing is unpickled.
    """
    try:
        declared = int(json.loads(bytes(view[_PREFIX.size : body_start]))["body_length"])
    except Exception:
        return
    actual = len(view) - body_start - _MAC_SIZE
    if declared != actual:
        raise SnapshotFormatError(
            f"truncated or padded: body is {actual} bytes, header declares {declared}"
        )


def _meta_from(header: dict[str, Any]) -> SnapshotMeta:
    try:
        return SnapshotMeta.from_dict(header["meta"])
    except (ValueError, KeyError, TypeError) as exc:
        raise SnapshotFormatError(f"bad snapshot metadata: {exc!r}") from exc


def read_meta(data: bytes, key: bytes) -> SnapshotMeta:
    """Verify ``data`` and return its metadata without unpickling anything."""
    header, _ = _verified_parts(data, key)
    return _meta_from(header)


def load_snapshot(data: bytes, key: bytes) -> Snapshot:
    """Verify ``data``, then unpickle it with the allow-listed unpickler.

    Raises
    ------
    SnapshotVerificationError
        The MAC does not match (wrong key, altered bytes).
    SnapshotFormatError
        Truncated, bad magic, unknown format version, bad header, or a refused class.
    """
    header, body = _verified_parts(data, key)
    meta = _meta_from(header)
    raw = bytes(body)
    if header["body_encoding"] == "zlib":
        try:
            raw = zlib.decompress(raw)
        except zlib.error as exc:
            raise SnapshotFormatError(f"snapshot body does not decompress: {exc}") from exc
    outer = _restricted_loads(raw)
    if not isinstance(outer, dict) or not isinstance(outer.get("model"), bytes):
        raise SnapshotFormatError("snapshot body is not {model, trainer_state}")
    model = _restricted_loads(outer["model"])
    if not isinstance(model, Recommender):
        raise SnapshotFormatError(f"snapshot model is a {type(model).__name__}, not a Recommender")
    state = outer.get("trainer_state") or {}
    if not isinstance(state, dict):
        raise SnapshotFormatError("snapshot trainer_state is not a dict")
    return Snapshot(meta=meta, model=model, trainer_state=state)
