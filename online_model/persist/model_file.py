"""Format v2 model files: a JSON manifest and the model's arrays in safetensors.

The layout, byte by byte, is specified in docs/model-format.md; :mod:`online_model.persist.snapshot`
adds the prefix and the MAC and checks them before anything here parses a byte. This
module turns a model into the manifest's ``model`` section plus a safetensors buffer and
back:

* ``encoding: "arrays"`` - a class registered with
  :func:`~online_model.state.stores_state`: its parameters and JSON values in the
  manifest, its arrays and string tables in the tensors. Nothing is unpickled to load it.
* ``encoding: "pickle"`` - any other model (a River model behind
  :class:`~online_model.models.adapter.RiverRanker`, a plug-in class): one ``uint8`` tensor
  ``model.pickle``, written and read only when the operator allows pickle.

The content hash is the SHA-256 of the canonical JSON of the ``model`` section followed
by the tensor bytes: equal models give equal hashes in every process (for ``arrays``).
"""

from __future__ import annotations

import hashlib
import logging
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load as load_tensors
from safetensors.numpy import save as save_tensors

import online_model.models  # noqa: F401  (the built-in models register: files name them)
from online_model.base import Recommender
from online_model.errors import ConfigurationError, ModelError, SnapshotFormatError
from online_model.state import (
    ModelState,
    StateNotExportable,
    canonical_json,
    check_array,
    class_name,
    decode_strings,
    delta_class,
    encode_strings,
    exports_state,
    json_params,
    registered_class,
)

logger = logging.getLogger(__name__)

#: Tensor names of a string table ``name``: its UTF-8 bytes and its offsets.
STRING_BYTES, STRING_OFFSETS = ".utf8", ".offsets"
PICKLE_TENSOR = "model.pickle"
ALLOW_PICKLE_HINT = (
    "set STREAMREC_ALLOW_PICKLE=1 on the trainer and the scorers to store and load such "
    "models (only for code you trust)"
)


@dataclass(frozen=True)
class EncodedModel:
    """A model as the manifest's ``model`` section and the tensor bytes."""

    section: dict[str, Any]
    tensors: bytes
    content_hash: str
    model_class: str


def encode_model(
    model: Recommender, allow_pickle: bool, state: ModelState | None = None
) -> EncodedModel:
    """Encode ``model`` (see the module docstring).

    ``state``: ``model.state_arrays()`` when the caller already has it (a trainer that
    keeps its published state up to date with its deltas); it must be exactly that.

    Raises
    ------
    ConfigurationError
        The model has no pickle-free form and pickle is not allowed.
    """
    name = class_name(type(model))
    reason = ""
    if exports_state(model):
        try:
            params = json_params(model)
            if state is None:
                state = model.state_arrays()  # type: ignore[attr-defined]
            tensors = _tensor_bytes(state)
        except StateNotExportable as exc:
            reason = str(exc)
        else:
            section = {"class": name, "encoding": "arrays", "params": params, "state": state.values}
            return _encoded(section, tensors, name)
    else:
        reason = f"{name} does not implement state_arrays()/from_state()"
    if not allow_pickle:
        raise ConfigurationError(
            f"model {type(model).__name__} can only be stored as a pickle ({reason}); "
            + ALLOW_PICKLE_HINT
        )
    blob = pickle.dumps(model, protocol=5)
    tensors = save_tensors({PICKLE_TENSOR: np.frombuffer(blob, dtype=np.uint8)})
    return _encoded({"class": name, "encoding": "pickle"}, tensors, name)


def _encoded(section: dict[str, Any], tensors: bytes, name: str) -> EncodedModel:
    digest = hashlib.sha256(canonical_json(section))
    digest.update(tensors)
    return EncodedModel(section, tensors, digest.hexdigest(), name)


def state_tensors(state: ModelState) -> bytes:
    """``state``'s arrays and string tables as one safetensors buffer (sorted names)."""
    return _tensor_bytes(state)


def state_from_tensors(tensors: bytes, values: Any) -> ModelState:
    """Inverse of :func:`state_tensors`, with ``values`` (from a verified manifest).

    Raises
    ------
    SnapshotFormatError
        The tensors do not parse, or a string table is malformed.
    """
    return _state_from(_parse_tensors(tensors), values)


def _tensor_bytes(state: ModelState) -> bytes:
    arrays: dict[str, np.ndarray] = {}
    for name, array in state.arrays.items():
        arrays[name] = check_array(name, array)
    for name, table in state.strings.items():
        data, offsets = encode_strings(table)
        arrays[name + STRING_BYTES], arrays[name + STRING_OFFSETS] = data, offsets
    if len(arrays) != len(state.arrays) + 2 * len(state.strings):
        raise ModelError("a string table's tensor names collide with an array's")
    # Sorted names: the same state gives the same bytes whatever order it was built in.
    return save_tensors({name: arrays[name] for name in sorted(arrays)})


def encode_delta(model: Recommender, delta: ModelState) -> EncodedModel:
    """A delta (:meth:`~online_model.state.TracksChanges.state_delta`) as the
    manifest's ``model`` section (``encoding: "delta"``) and its tensors. Its
    ``content_hash`` is the hash of this section and these tensors only."""
    name = class_name(type(model))
    section = {
        "class": name,
        "encoding": "delta",
        "params": json_params(model),
        "state": delta.values,
    }
    return _encoded(section, _tensor_bytes(delta), name)


@dataclass(frozen=True)
class ModelImage:
    """A model as its class, parameters and :class:`ModelState`: what a delta applies to."""

    cls: type
    params: dict[str, Any]
    state: ModelState

    @property
    def class_name(self) -> str:
        return class_name(self.cls)

    def build(self) -> Recommender:
        """The model this image describes (:meth:`from_state`)."""
        name = self.class_name
        try:
            model = self.cls.from_state(dict(self.params), self.state)  # type: ignore[attr-defined]
        except SnapshotFormatError:
            raise
        except Exception as exc:  # the arrays do not fit the model: not usable
            raise SnapshotFormatError(f"snapshot state does not fit {name}: {exc!r}") from exc
        if not isinstance(model, Recommender):
            raise SnapshotFormatError(
                f"snapshot model is a {type(model).__name__}, not a Recommender"
            )
        return model

    def blank(self) -> Recommender:
        """A model of this image's class and parameters that has learned nothing: what
        a snapshot loaded without building (``build=False``) carries, for a reader that
        needs only ``image`` (its state) and not the model's own structures."""
        model = self.cls(**self.params)
        if not isinstance(model, Recommender):
            raise SnapshotFormatError(
                f"snapshot model is a {type(model).__name__}, not a Recommender"
            )
        return model


def decode_image(section: Any, tensors: bytes, encoding: str = "arrays") -> ModelImage:
    """The class, parameters and state of a verified file whose model section has
    ``encoding`` (``arrays``: a full state; ``delta``: a delta's changes).

    Raises
    ------
    SnapshotFormatError
        Another encoding, an unknown class (or one without deltas), tensors that do not
        parse.
    """
    if not isinstance(section, dict) or not isinstance(section.get("class"), str):
        raise SnapshotFormatError("bad manifest: model section has no class")
    name = section["class"]
    if section.get("encoding") != encoding:
        raise SnapshotFormatError(
            f"model encoding {section.get('encoding')!r} where {encoding!r} was expected"
        )
    cls = registered_class(name) if encoding == "arrays" else delta_class(name)
    if cls is None:
        raise SnapshotFormatError(f"snapshot model class {name} is not a known model class")
    params = section.get("params")
    if not isinstance(params, dict):
        raise SnapshotFormatError("bad manifest: model params is not an object")
    return ModelImage(cls, params, _state_from(_parse_tensors(tensors), section.get("state")))


def decode_model(
    section: Any,
    tensors: bytes,
    allow_pickle: bool,
    unpickle: Callable[[bytes], Any],
) -> Recommender:
    """Rebuild the model of a verified file (``unpickle``: the allow-listing unpickler).

    Raises
    ------
    SnapshotFormatError
        Unknown class or encoding, tensors that do not parse or do not fit the model,
        or a pickled model while pickle is not allowed.
    """
    if not isinstance(section, dict) or not isinstance(section.get("class"), str):
        raise SnapshotFormatError("bad manifest: model section has no class")
    name, encoding = section["class"], section.get("encoding")
    if encoding == "pickle":
        if not allow_pickle:
            raise SnapshotFormatError(
                f"snapshot holds a pickled {name}; refused. " + ALLOW_PICKLE_HINT
            )
        model = unpickle(bytes(_parse_tensors(tensors).get(PICKLE_TENSOR, b"")))
    elif encoding == "arrays":
        model = decode_image(section, tensors).build()
    elif encoding == "delta":
        raise SnapshotFormatError(
            f"this file holds a delta of a {name}, not a model: the snapshot store applies "
            "it to its base (docs/model-format.md)"
        )
    else:
        raise SnapshotFormatError(f"unknown model encoding {encoding!r}")
    if not isinstance(model, Recommender):
        raise SnapshotFormatError(f"snapshot model is a {type(model).__name__}, not a Recommender")
    return model


#: Key of the safetensors metadata that carries the manifest in an exported file.
MANIFEST_METADATA_KEY = "streamrec.manifest"


def standalone_safetensors(manifest: dict[str, Any], tensors: bytes) -> bytes:
    """One plain ``.safetensors`` file: the tensors, and the manifest (canonical JSON) as
    the string ``streamrec.manifest`` of the file's ``__metadata__``. Unsigned: for
    tools that read safetensors, not for a scorer."""
    arrays = _parse_tensors(tensors)
    metadata = {MANIFEST_METADATA_KEY: canonical_json(manifest).decode("utf-8")}
    return save_tensors({name: arrays[name] for name in sorted(arrays)}, metadata=metadata)


def _parse_tensors(tensors: bytes) -> dict[str, np.ndarray]:
    try:
        return load_tensors(tensors)
    except (SafetensorError, ValueError, TypeError) as exc:
        raise SnapshotFormatError(f"snapshot tensors do not parse: {exc}") from exc


def _state_from(arrays: dict[str, np.ndarray], values: Any) -> ModelState:
    if not isinstance(values, dict):
        raise SnapshotFormatError("bad manifest: model state is not an object")
    state = ModelState(values=values)
    tables = {n[: -len(STRING_BYTES)] for n in arrays if n.endswith(STRING_BYTES)}
    for table in tables:
        data = arrays.pop(table + STRING_BYTES)
        offsets = arrays.pop(table + STRING_OFFSETS, None)
        if offsets is None or data.dtype != np.uint8 or offsets.dtype != np.int64:
            raise SnapshotFormatError(f"string table {table!r} is malformed")
        try:
            state.strings[table] = decode_strings(data, offsets)
        except ModelError as exc:  # what every loader's caller catches is SnapshotError
            raise SnapshotFormatError(f"string table {table!r} is malformed: {exc}") from exc
    state.arrays = arrays
    return state
