"""Pickles in model files, read through an allow-list (defence in depth).

Format-1 snapshots (earlier releases) are pickles, and format-2 files hold one for a
model without a pickle-free form (a River model, a plug-in), both only where the
operator allows pickle (``STREAMREC_ALLOW_PICKLE``). Whatever is unpickled goes through
:func:`restricted_loads`, which resolves only the globals the built-in models, numpy and
plain containers need, plus River and ``online_model`` classes: a leaked key must not turn
into code execution through a crafted pickle.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

from online_model.errors import SnapshotFormatError

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


#: Modules of the built-in models before they moved into their layers: pickles written
#: then name these, and they load from where the code lives now.
MOVED_MODULES = {
    "online_model.adapter": "online_model.models.adapter",
    "online_model.blend": "online_model.models.blend",
    "online_model.covisit": "online_model.models.covisit.model",
    "online_model.decay": "online_model.models.decay",
    "online_model.factorization": "online_model.models.factorization",
    "online_model.hybrid": "online_model.models.hybrid",
    "online_model.itemitem": "online_model.models.itemitem",
    "online_model.popularity": "online_model.models.popularity",
    "online_model.fresh": "online_model.catalog.fresh",
}


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only allow-listed globals."""

    def find_class(self, module: str, name: str) -> Any:
        module = MOVED_MODULES.get(module, module)
        if is_allowed_global(module, name):
            obj = super().find_class(module, name)
            if not module.startswith("river.") or isinstance(obj, type):
                return obj
        raise SnapshotFormatError(f"snapshot refers to {module}.{name}, which is not allowed")


def restricted_loads(data: bytes) -> Any:
    try:
        return _RestrictedUnpickler(io.BytesIO(data)).load()
    except SnapshotFormatError:
        raise
    except Exception as exc:  # any unpickling failure means the bytes are not usable
        raise SnapshotFormatError(f"snapshot body does not unpickle: {exc!r}") from exc
