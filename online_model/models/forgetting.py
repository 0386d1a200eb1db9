"""Forgetting pages: what a model does when the catalog says a page is gone for good.

A page deleted from the catalog (a tombstone on ``pages``) or past its ``expires_at`` is
never served again, so what a model learned about it only takes room: its row of
transitions, the links other pages keep to it, its popularity. A model that can drop
that implements ``forget(pages) -> int`` (how many of ``pages`` it knew); the trainer
calls it when the catalog changes, so the page leaves the next snapshot.

A hidden page (``available=false``, or ``published_at`` still ahead) is not forgotten:
hiding is reversible, and what the model learned about the page is still true when it
comes back. Scorers filter it out of every list meanwhile.

>>> from online_model.models.popularity import DecayedPopularity
>>> model = DecayedPopularity()
>>> model.learn_one("u", "p1")
>>> can_forget(model), forget_pages(model, {"p1"}), model.n_items
(True, 1, 0)
"""

from __future__ import annotations

from collections.abc import Collection, Hashable
from typing import Protocol, runtime_checkable


@runtime_checkable
class Forgets(Protocol):
    """A model that can drop what it learned about some pages (see the module docstring).

    ``forget`` must leave a model that keeps learning and serving as if the pages had
    never been viewed, apart from what their views taught about other pages (a link
    between two kept pages that a forgotten page's session made stays): the pages are
    neither recommended nor in its snapshots. A model whose ability depends on its parts
    (a blend) says so with a ``forgets_pages`` attribute."""

    def forget(self, pages: Collection[Hashable]) -> int: ...


def can_forget(model: object) -> bool:
    """Whether ``model`` implements :class:`Forgets` (and, where it says, can now)."""
    return isinstance(model, Forgets) and bool(getattr(model, "forgets_pages", True))


def forget_pages(model: object, pages: Collection[Hashable]) -> int | None:
    """Make ``model`` forget ``pages``: how many it knew, or None if it cannot forget."""
    if not pages:
        return 0
    if not can_forget(model):
        return None
    return model.forget(pages)  # type: ignore[attr-defined]
