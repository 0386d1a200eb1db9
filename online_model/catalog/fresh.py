"""New-page cold start: fresh pages from catalog metadata, blended in with a bounded share.

A page nobody has viewed yet is unknown to every model built from views, so it cannot be
recommended until someone finds it another way. :class:`FreshPages` indexes the catalog's
pages by category and publication time and counts their views; for a user it proposes
pages published within ``window_ms``, viewed at most ``max_views`` times, in the
categories of the user's recent pages, newest first. :func:`blend_fresh` gives them at
most ``slots`` places at the end of a list, so the model's own ranking keeps the rest.

:class:`FreshBlend` wraps a model with both, as the prequential evaluation runs it: it
learns what the model learns (counting views), and "now" is the time of the latest event
it learned, so the evaluation never looks ahead.
"""

from __future__ import annotations

import bisect
from collections.abc import Collection, Hashable, Iterable, Mapping, Sequence
from typing import Any

from online_model.base import Recommender

DAY_MS = 86_400_000


class FreshPages:
    """Pages by category and publication time, with their view counts.

    >>> fresh = FreshPages(window_ms=1_000, max_views=1)
    >>> fresh.add("old", ["news"], published_at=0)
    >>> fresh.add("new", ["news"], published_at=900)
    >>> fresh.add("later", ["news"], published_at=2_000)
    >>> fresh.candidates(["news"], now_ms=1_000, n=5, exclude=set())
    ['new', 'old']
    >>> fresh.observe("new"); fresh.observe("new")  # viewed twice: no longer fresh
    >>> fresh.candidates(["news"], now_ms=1_500, n=5, exclude=set())
    []
    """

    def __init__(self, window_ms: int = DAY_MS, max_views: int = 5) -> None:
        self.window_ms = window_ms
        self.max_views = max_views
        self._by_category: dict[str, list[tuple[int, str]]] = {}
        self._categories: dict[str, tuple[str, ...]] = {}
        self._published: dict[str, int] = {}
        self._views: dict[str, int] = {}
        #: The latest publication time indexed (never lowered): no page can be fresh
        #: once it is older than the window, which spares the search.
        self.latest = -(2**62)

    def add(self, page: str, categories: Iterable[str], published_at: int) -> None:
        """Index ``page`` (again: its new categories and time replace the old ones)."""
        self.remove(page)
        cats = tuple(dict.fromkeys(categories))
        self._categories[page] = cats
        self._published[page] = published_at
        self.latest = max(self.latest, published_at)
        for category in cats:
            bisect.insort(self._by_category.setdefault(category, []), (published_at, page))

    def remove(self, page: str) -> None:
        """Forget ``page`` (its views too)."""
        published = self._published.pop(page, None)
        if published is None:
            return
        for category in self._categories.pop(page, ()):
            pages = self._by_category[category]
            pages.pop(bisect.bisect_left(pages, (published, page)))
            if not pages:
                del self._by_category[category]
        self._views.pop(page, None)

    def may_have_fresh(self, now_ms: int) -> bool:
        """False when no indexed page was published within the window before ``now_ms``."""
        return self.latest >= now_ms - self.window_ms

    def observe(self, page: Hashable) -> None:
        """Count one view of ``page`` (views of pages outside the window are not kept)."""
        if page in self._categories:
            self._views[page] = self._views.get(page, 0) + 1

    def categories(self, page: Hashable) -> tuple[str, ...]:
        return self._categories.get(page, ())  # type: ignore[call-overload]

    def candidates(
        self, categories: Iterable[str], now_ms: int, n: int, exclude: Collection[Hashable]
    ) -> list[str]:
        """Up to ``n`` fresh pages of ``categories``, newest first."""
        found: list[tuple[int, str]] = []
        oldest = now_ms - self.window_ms
        views, most = self._views, self.max_views
        for category in dict.fromkeys(categories):
            pages = self._by_category.get(category)
            if not pages:
                continue
            # (now_ms, "\uffff") sorts after every page published at now_ms
            at = bisect.bisect_right(pages, (now_ms, "\uffff"))
            taken = 0
            while at > 0 and taken < n:
                at -= 1
                try:
                    published, page = pages[at]
                except IndexError:  # the catalog's reader shrank the list meanwhile
                    break
                if published < oldest:
                    break
                if views.get(page, 0) <= most and page not in exclude:
                    found.append((published, page))
                    taken += 1
        found.sort(reverse=True)
        return list(dict.fromkeys(page for _, page in found))[:n]


def blend_fresh(
    items: list[tuple[Hashable, float]], fresh: Sequence[str], k: int, slots: int
) -> list[tuple[Hashable, float]]:
    """``items`` with up to ``slots`` of their last places given to ``fresh`` pages (each
    scored as the lowest item it follows, so the list stays sorted).

    >>> blend_fresh([("a", 3.0), ("b", 2.0), ("c", 1.0)], ["n1", "n2"], k=3, slots=1)
    [('a', 3.0), ('b', 2.0), ('n1', 2.0)]
    """
    extra = [page for page in fresh if page not in {item for item, _ in items}][:slots]
    if not extra:
        return items[:k]
    kept = items[: max(0, k - len(extra))]
    floor = kept[-1][1] if kept else 0.0
    return kept + [(page, floor) for page in extra]


class FreshBlend(Recommender):
    """``model`` with fresh pages of the user's recent categories in ``slots`` places.

    Parameters
    ----------
    model
        The recommender whose lists are blended.
    pages
        Catalog metadata: page id -> ``{"categories": [...], "published_at": ms}``.
    slots
        Places of a list fresh pages may take (at the end).
    window_ms, max_views
        A page is fresh while published less than ``window_ms`` ago and viewed at most
        ``max_views`` times.
    n_recent
        Newest history pages whose categories are the user's.
    """

    def __init__(
        self,
        model: Recommender,
        pages: Mapping[str, Mapping[str, Any]],
        slots: int = 1,
        window_ms: int = DAY_MS,
        max_views: int = 5,
        n_recent: int = 5,
    ) -> None:
        self.model = model
        self.pages = pages
        self.slots = slots
        self.window_ms = window_ms
        self.max_views = max_views
        self.n_recent = n_recent
        self.fresh = FreshPages(window_ms, max_views)
        for page, meta in pages.items():
            self.fresh.add(page, meta.get("categories") or (), int(meta.get("published_at") or 0))
        self.now_ms = 0
        self.n_events_learned = 0

    def learn_one(
        self, user: Hashable, item: Hashable, y: Any = None, x: dict[str, Any] | None = None
    ) -> None:
        self.model.learn_one(user, item, y, x)
        self.fresh.observe(item)
        if x and "ts" in x:
            self.now_ms = int(x["ts"])
        self.n_events_learned += 1

    def _recommend(
        self, user: Hashable, k: int, history: Sequence[Hashable], exclude: Collection[Hashable]
    ) -> list[tuple[Hashable, float]]:
        items = self.model.recommend(user, k, history, exclude)
        categories = [c for page in history[-self.n_recent :] for c in self.fresh.categories(page)]
        if not categories or not self.slots:
            return items
        fresh = self.fresh.candidates(categories, self.now_ms, self.slots, exclude)
        return blend_fresh(items, fresh, k, self.slots)

    @property
    def n_items(self) -> int:
        return self.model.n_items
