"""A model's learned state as plain values, named arrays and string tables (format v2).

A model opts in to the pickle-free snapshot format by implementing two methods and
registering its class with :func:`stores_state`:

``state_arrays(self) -> ModelState``
    Everything the model learned: JSON scalars in ``values``, numbers in ``arrays``
    (numpy, C order), page and user ids in ``strings`` (lists of ``str``). Constructor
    parameters are not part of it: the snapshot stores ``_get_params()`` beside it.
``from_state(cls, params, state) -> model`` (a classmethod)
    The inverse: a model built with ``params`` that then holds ``state``. The result must
    recommend, and keep learning, exactly as the exported model would.

Both must be deterministic: equal models give equal states, in the same order, in every
process (no set or hash order), because the snapshot's content hash is computed over
them. A model that cannot export a particular instance (say a blend with a member that
has no pickle-free form, or ids that are not strings) raises :class:`StateNotExportable`;
the snapshot writer then falls back to pickle where the operator allows it.

Nested models (a popularity model inside co-visitation, the members of a blend) export
their own state and the owner files it under a prefix with :meth:`ModelState.nest`.

>>> state = ModelState(values={"n": 2}, arrays={"w": np.ones(2)}, strings={"pages": ["a", "b"]})
>>> outer = ModelState()
>>> outer.nest("inner", state)
>>> sorted(outer.arrays), sorted(outer.strings), outer.values
(['inner.w'], ['inner.pages'], {'inner': {'n': 2}})
>>> outer.sub("inner").strings["pages"]
['a', 'b']
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from online_model.errors import ModelError

logger = logging.getLogger(__name__)

#: Array dtypes a state may use: the ones every safetensors reader knows.
ARRAY_DTYPES = frozenset(
    np.dtype(t) for t in (np.float64, np.float32, np.int64, np.int32, np.uint32, np.uint8)
)


class StateNotExportable(ModelError):
    """This model instance has no pickle-free state (see the module docstring)."""


@dataclass
class ModelState:
    """What :meth:`state_arrays` returns and :meth:`from_state` receives."""

    values: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    strings: dict[str, list[str]] = field(default_factory=dict)

    def nest(self, prefix: str, inner: ModelState) -> None:
        """File ``inner`` under ``prefix`` (values as a sub-dict, names as ``prefix.name``)."""
        self.values[prefix] = inner.values
        for name, array in inner.arrays.items():
            self.arrays[f"{prefix}.{name}"] = array
        for name, table in inner.strings.items():
            self.strings[f"{prefix}.{name}"] = table

    def sub(self, prefix: str) -> ModelState:
        """The state filed under ``prefix`` by :meth:`nest`."""
        head = prefix + "."
        return ModelState(
            values=dict(self.values[prefix]),
            arrays={n[len(head) :]: a for n, a in self.arrays.items() if n.startswith(head)},
            strings={n[len(head) :]: s for n, s in self.strings.items() if n.startswith(head)},
        )

    def array(self, name: str, dtype: Any, ndim: int = 1) -> np.ndarray:
        """Array ``name``, checked to be of ``dtype`` with ``ndim`` dimensions."""
        try:
            array = self.arrays[name]
        except KeyError as exc:
            raise ModelError(f"model state has no array {name!r}") from exc
        if array.dtype != np.dtype(dtype) or array.ndim != ndim:
            raise ModelError(
                f"model state array {name!r} is {array.dtype}[{array.ndim}d], "
                f"expected {np.dtype(dtype)}[{ndim}d]"
            )
        return array

    def table(self, name: str) -> list[str]:
        """String table ``name``."""
        try:
            return self.strings[name]
        except KeyError as exc:
            raise ModelError(f"model state has no string table {name!r}") from exc


# -- ids --------------------------------------------------------------------------------------
def id_table(ids: Iterable[Hashable], what: str) -> list[str]:
    """``ids`` as a list of ``str``; :class:`StateNotExportable` if one is not a string."""
    table: list[str] = []
    for value in ids:
        if type(value) is not str:
            raise StateNotExportable(
                f"format v2 stores {what} ids as strings; {value!r} is a {type(value).__name__}"
            )
        table.append(value)
    return table


def encode_strings(table: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """A string table as (UTF-8 bytes, offsets): string ``i`` is ``utf8[off[i]:off[i+1]]``.

    >>> data, offsets = encode_strings(["a", "été", ""])
    >>> offsets.tolist(), decode_strings(data, offsets)
    ([0, 1, 6, 6], ['a', 'été', ''])
    """
    encoded = [s.encode("utf-8") for s in table]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    if encoded:
        np.cumsum([len(b) for b in encoded], out=offsets[1:])
    return np.frombuffer(b"".join(encoded), dtype=np.uint8).copy(), offsets


def decode_strings(data: np.ndarray, offsets: np.ndarray) -> list[str]:
    """Inverse of :func:`encode_strings`; :class:`ModelError` when the two do not fit."""
    if offsets.ndim != 1 or len(offsets) < 1 or offsets[0] != 0 or offsets[-1] != len(data):
        raise ModelError("string table offsets do not span its bytes")
    if len(offsets) > 1 and bool(np.any(offsets[1:] < offsets[:-1])):
        raise ModelError("string table offsets go backwards")
    raw = data.tobytes()
    bounds = offsets.tolist()
    try:
        if raw.isascii():
            text = raw.decode("ascii")  # one decode; byte offsets are character offsets
            return [text[a:b] for a, b in itertools.pairwise(bounds)]
        return [raw[a:b].decode("utf-8") for a, b in itertools.pairwise(bounds)]
    except UnicodeDecodeError as exc:
        raise ModelError(f"string table is not UTF-8: {exc}") from exc


def check_array(name: str, array: np.ndarray) -> np.ndarray:
    """``array`` ready for the tensor file: a known dtype, C order, native little endian."""
    if not isinstance(array, np.ndarray) or array.dtype not in ARRAY_DTYPES:
        kind = getattr(array, "dtype", type(array).__name__)
        raise ModelError(f"model state array {name!r} has unsupported type {kind}")
    return np.ascontiguousarray(array.astype(array.dtype.newbyteorder("<"), copy=False))


def check_rows(array: np.ndarray, n: int, what: str) -> None:
    """:class:`ModelError` unless every value of ``array`` is a row of a table of ``n`` rows."""
    if len(array) and (int(array.min()) < 0 or int(array.max()) >= n):
        raise ModelError(f"{what}: row numbers outside a table of {n} rows")


def rows_of(array: np.ndarray, n: int, what: str) -> list[int]:
    """``array`` as a list of row numbers of a table of ``n`` rows (each checked)."""
    check_rows(array, n, what)
    return array.tolist()


def indptr_of(lengths: Sequence[int]) -> np.ndarray:
    """Row pointers of ragged rows of ``lengths``: row ``i`` is ``[indptr[i], indptr[i+1])``."""
    indptr = np.zeros(len(lengths) + 1, dtype=np.int64)
    if lengths:
        np.cumsum(lengths, out=indptr[1:])
    return indptr


def check_indptr(indptr: np.ndarray, n_rows: int, n_values: int, what: str) -> list[int]:
    """Row pointers checked to cover ``n_values`` values in ``n_rows`` rows, in order."""
    if (
        len(indptr) != n_rows + 1
        or indptr[0] != 0
        or indptr[-1] != n_values
        or (n_rows and bool(np.any(np.diff(indptr) < 0)))
    ):
        raise ModelError(f"{what}: row pointers do not fit {n_rows} rows of {n_values} values")
    return indptr.tolist()


def take_rows(
    indptr: np.ndarray, values: Sequence[np.ndarray], rows: np.ndarray
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Rows ``rows`` (in that order, repeats allowed) of ragged arrays sharing ``indptr``:
    the new row pointers and the new arrays, in numpy (no Python loop over rows).

    >>> indptr, (v,) = take_rows(np.array([0, 2, 2, 3]), [np.array([5, 6, 7])], np.array([2, 0, 1]))
    >>> indptr.tolist(), v.tolist()
    ([0, 1, 3, 3], [7, 5, 6])
    """
    starts = indptr[:-1][rows]
    lengths = (indptr[1:] - indptr[:-1])[rows]
    new_indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=new_indptr[1:])
    index = np.repeat(starts - new_indptr[:-1], lengths) + np.arange(new_indptr[-1])
    return new_indptr, [v[index] for v in values]


def stack_rows(
    indptr: np.ndarray,
    values: Sequence[np.ndarray],
    more_indptr: np.ndarray,
    more_values: Sequence[np.ndarray],
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Two sets of ragged rows as one: the rows of the second follow those of the first,
    and one empty row comes last (for :func:`take_rows` to pick where nothing is stored)."""
    end = indptr[-1]
    stacked = np.concatenate([indptr, more_indptr[1:] + end, more_indptr[-1:] + end])
    return stacked, [np.concatenate([a, b]) for a, b in zip(values, more_values, strict=True)]
