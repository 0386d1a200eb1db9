"""Which classes may be rebuilt from a snapshot, and under which name files record them.

A model opts in to the pickle-free format (:mod:`online_model.state.arrays`) by
implementing ``state_arrays``/``from_state`` and registering its class with
:func:`stores_state`; one that can also describe what changed since its last publish
registers with :func:`tracks_changes` (delta snapshots). A loader looks a file's class
name up here, never importing whatever module a file names: the built-in models register
when :mod:`online_model.models` is imported (the file readers in
:mod:`online_model.persist` import it), plug-in models when their own module is.

The name a file records is the class's ``module.QualName``, or the name the class
declares as its own ``STORED_AS``: the built-ins keep the module path they had when the
format was defined (``online_model.covisit.Covisitation``), so files stay readable as the
code moves.
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar, runtime_checkable

from online_model.state.arrays import ModelState

T = TypeVar("T", bound=type)


@runtime_checkable
class StoresState(Protocol):
    """A model with a pickle-free state (see the module docstring)."""

    def state_arrays(self) -> ModelState: ...

    @classmethod
    def from_state(cls, params: dict[str, Any], state: ModelState) -> Any: ...


# -- classes that may be rebuilt from a snapshot ------------------------------------------
_CLASSES: dict[str, type] = {}


def class_name(cls: type) -> str:
    """The name a snapshot records for ``cls``: its own ``STORED_AS`` if it declares one
    (not inherited: a subclass is another class), else ``module.QualName``."""
    stored_as = cls.__dict__.get("STORED_AS")
    return stored_as if isinstance(stored_as, str) else f"{cls.__module__}.{cls.__qualname__}"


def stores_state(cls: T) -> T:
    """Class decorator: ``cls`` may be rebuilt from a snapshot by :meth:`from_state`.

    Only registered classes are: a snapshot names a class, and the loader looks the name
    up here instead of importing whatever module the file names.
    """
    if not all(callable(getattr(cls, m, None)) for m in ("state_arrays", "from_state")):
        raise TypeError(f"{cls.__name__} must define state_arrays() and from_state()")
    _CLASSES[class_name(cls)] = cls
    return cls


@runtime_checkable
class TracksChanges(Protocol):
    """A model that can describe what changed since its last publish (delta snapshots).

    ``mark_published()``
        The model's state as it is now was published: start (or restart) tracking.
    ``state_delta() -> ModelState | None``
        What changed since, at a cost that grows with the change, not with the model;
        None when only a full state will do (tracking not started, or a change that
        touched everything, such as a decay rescale).
    ``apply_state_delta(base, delta) -> ModelState`` (a staticmethod)
        The full state (as :meth:`StoresState.state_arrays` would give it) after
        applying ``delta`` to ``base``; pure, ``base`` is left as it is.
    """

    def mark_published(self) -> None: ...

    def state_delta(self) -> ModelState | None: ...

    @staticmethod
    def apply_state_delta(base: ModelState, delta: ModelState) -> ModelState: ...


_DELTA_CLASSES: set[str] = set()


def tracks_changes(cls: T) -> T:
    """Class decorator: ``cls`` (already :func:`stores_state`) publishes delta snapshots."""
    methods = ("mark_published", "state_delta", "apply_state_delta")
    if not all(callable(getattr(cls, m, None)) for m in methods):
        raise TypeError(f"{cls.__name__} must define {', '.join(methods)}")
    _DELTA_CLASSES.add(class_name(cls))
    return cls


def tracks_deltas(model: object) -> bool:
    """Whether ``model``'s own class publishes deltas (a subclass must opt in itself)."""
    name = class_name(type(model))
    return name in _DELTA_CLASSES and _CLASSES.get(name) is type(model)


def delta_class(name: str) -> type | None:
    """The registered class ``name`` if it applies deltas, else None."""
    cls = registered_class(name)
    return cls if cls is not None and name in _DELTA_CLASSES else None


def registered_class(name: str) -> type | None:
    """The class registered under ``name``, or None.

    The built-in models register themselves when :mod:`online_model.models` is imported;
    plug-in models when their own module is imported.
    """
    return _CLASSES.get(name)


def exports_state(model: object) -> bool:
    """Whether ``model``'s class opted in (an instance may still refuse, see above)."""
    return _CLASSES.get(class_name(type(model))) is type(model)
