"""The page catalog: which pages may be recommended now, and a filter that keeps lists full.

A :class:`Catalog` is the table the compacted ``pages`` topic describes: the latest record
per page id, with tombstones deleting. It knows nothing of Kafka; a reader applies the
records it consumes (:meth:`Catalog.apply`) and scorers ask :meth:`Catalog.eligible`.

A page is eligible when the catalog's record says it is available, it is published
(``published_at`` absent or not in the future) and not expired (``expires_at`` absent or
in the future). A deleted page is never eligible. A page with no record follows the
``unknown`` policy: ``allow`` (the default: the model's pages are served until the
catalog says otherwise) or ``deny`` (only pages the catalog lists are served).

Per-request rules (:class:`Rules`) narrow one list further: ``categories`` keeps pages
whose record lists at least one of them (a page with no record has no category), and
``exclude`` names pages the caller does not want, on top of those the user has seen.

:func:`recommend_eligible` filters after candidate generation and before the top k: it
asks the model for more candidates than k and, when filtering still leaves fewer than k,
asks again for more until k are eligible or the model has no more to give. When few pages
pass (a category rule, most pages hidden: an expected share under
:data:`MODEL_FILTER_SHARE`) and the model implements :class:`FiltersCandidates`, the
model is instead handed the filter and ranks only the pages it accepts: asking for
k / share candidates would make it rank far past its shortlists, often every page.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Collection, Hashable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from online_model.base import MAX_HISTORY
from online_model.catalog.fresh import FreshPages
from online_model.errors import ConfigurationError, InputError

#: What a catalog does with pages it has no record of.
UNKNOWN_POLICIES = ("allow", "deny")
#: How much the ask grows when filtering left fewer than k (geometric, so the total work
#: is at most ~4/3 of the last ask).
OVER_FETCH = 4
#: The first ask: k / (the share of pages expected to pass) x this margin. The model's
#: cost grows with the ask, so asking 4k when a tenth of the pages is hidden (or 4k, then
#: 16k, when a rule keeps a tenth) is what this avoids.
MARGIN = 1.5
#: Below this expected share of passing pages, a model that can filter its own
#: candidates (:class:`FiltersCandidates`) is handed the filter instead of being asked
#: for k / share candidates. Above it, over-fetching costs little more than k (and the
#: model's fast path for plain lists serves it).
MODEL_FILTER_SHARE = 0.25


_NONE: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Rules:
    """One request's own filters: only pages of ``categories`` (any of them; empty = no
    category rule), never the pages of ``exclude``."""

    categories: frozenset[str] = frozenset()
    exclude: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.categories or self.exclude)


@dataclass(frozen=True)
class PageEntry:
    """What the catalog holds of one page (times in epoch milliseconds)."""

    available: bool = True
    published_at: int | None = None
    expires_at: int | None = None

    def eligible(self, now_ms: int) -> bool:
        if not self.available:
            return False
        if self.published_at is not None and self.published_at > now_ms:
            return False
        return self.expires_at is None or now_ms < self.expires_at


def _optional_ms(record: Mapping[str, Any], name: str) -> int | None:
    value = record.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"page {name} must be epoch milliseconds, got {value!r}")
    return value


class Catalog:
    """The latest catalog record of every page, and the eligibility rule.

    >>> catalog = Catalog()
    >>> catalog.apply("p1", {"page_id": "p1", "available": False})
    >>> catalog.apply("p2", {"page_id": "p2", "expires_at": 1_000})
    >>> catalog.apply("p3", None)  # a tombstone: deleted
    >>> [catalog.eligible(p, now_ms=500) for p in ("p1", "p2", "p3", "unknown")]
    [False, True, False, True]
    >>> catalog.eligible("p2", now_ms=1_000)
    False
    >>> Catalog(unknown="deny").eligible("unknown", now_ms=0)
    False
    """

    def __init__(self, unknown: str = "allow", fresh: FreshPages | None = None) -> None:
        if unknown not in UNKNOWN_POLICIES:
            raise ConfigurationError(f"unknown-page policy must be allow or deny, got {unknown!r}")
        self.unknown = unknown
        self._allow_unknown = unknown == "allow"
        self._pages: dict[str, PageEntry] = {}
        self._records: dict[str, dict[str, Any]] = {}
        self._deleted: set[str] = set()
        self._categories: dict[str, frozenset[str]] = {}
        # Pages per category: a rule naming only categories no page has is answered at
        # once, and a model can rank a category's pages instead of every page it knows.
        self._category_pages: dict[str, set[str]] = {}
        # Unions of several categories' pages, valid while ``_version`` is unchanged.
        self._unions: dict[frozenset[str], tuple[int, frozenset[str]]] = {}
        self._version = 0
        # Pages whose record can make them ineligible; none and unknown=allow means no
        # filtering is needed at all (the common case before any page is hidden).
        self._restricting: set[str] = set()
        self._lock = threading.Lock()  # a reader thread applies while scorers read
        #: Pages with a publication time, for new-page cold start (None: not kept).
        self.fresh = fresh

    def apply(self, page_id: str, record: Mapping[str, Any] | None) -> None:
        """Apply one record of the ``pages`` topic: a Page, or ``None`` (a tombstone)."""
        with self._lock:
            self._version += 1
            self._set_categories(page_id, frozenset())
            if self.fresh is not None:
                self.fresh.remove(page_id)
            if record is None:
                self._pages.pop(page_id, None)
                self._records.pop(page_id, None)
                self._restricting.discard(page_id)
                # Remembered: under allow, forgetting it would make a deleted page
                # servable again as an unknown one.
                self._deleted.add(page_id)
                return
            entry = PageEntry(
                bool(record.get("available", True)),
                _optional_ms(record, "published_at"),
                _optional_ms(record, "expires_at"),
            )
            self._pages[page_id] = entry
            self._records[page_id] = dict(record)
            self._set_categories(page_id, frozenset(record.get("categories") or ()))
            if self.fresh is not None and entry.published_at is not None:
                self.fresh.add(page_id, record.get("categories") or (), entry.published_at)
            self._deleted.discard(page_id)
            if entry == PageEntry():
                self._restricting.discard(page_id)
            else:
                self._restricting.add(page_id)

    def _set_categories(self, page_id: str, categories: frozenset[str]) -> None:
        index = self._category_pages
        for category in self._categories.pop(page_id, frozenset()):
            members = index[category]
            members.discard(page_id)
            if not members:
                del index[category]
        if categories:
            self._categories[page_id] = categories
            for category in categories:
                index.setdefault(category, set()).add(page_id)

    def categories(self, page_id: Hashable) -> frozenset[str]:
        """The categories the latest record of ``page_id`` lists (none without a record)."""
        return self._categories.get(page_id, _NONE)  # type: ignore[call-overload]

    def has_category(self, category: str) -> bool:
        """Does any page's latest record list ``category``?"""
        return category in self._category_pages

    def category_members(self, categories: frozenset[str]) -> Collection[str]:
        """The pages whose latest record names one of ``categories``, as a set to test
        membership in (the index's own set for one category: read it, never change it;
        iterate over a copy, ``list(...)``, which a reader thread's apply cannot disturb).
        Unions of several categories are kept until the catalog next changes."""
        index = self._category_pages
        if len(categories) == 1:
            (category,) = categories
            return index.get(category, _NONE)
        version = self._version
        cached = self._unions.get(categories)
        if cached is not None and cached[0] == version:
            return cached[1]
        union = frozenset().union(*(index.get(c, _NONE) for c in categories))
        if len(self._unions) >= 64:
            self._unions.clear()
        self._unions[categories] = (version, union)
        return union

    def eligible_share(self, categories: frozenset[str] = _NONE) -> float:
        """Roughly what share of the catalog's pages passes (hidden, dated and deleted
        pages counted as failing; ``categories`` narrowing it): a first guess at how many
        candidates to ask for, never a rule."""
        listed = len(self._pages)
        if not listed:
            return 1.0
        share = (listed - len(self._restricting)) / listed
        if categories:
            index = self._category_pages
            share *= min(1.0, sum(len(index.get(c, ())) for c in categories) / listed)
        return max(share, 1e-4)

    def eligible(self, page_id: Hashable, now_ms: int) -> bool:
        """May ``page_id`` be recommended at ``now_ms``?"""
        entry = self._pages.get(page_id)  # type: ignore[call-overload]
        if entry is not None:
            return entry.eligible(now_ms)
        if page_id in self._deleted:
            return False
        return self._allow_unknown

    @property
    def filters_nothing(self) -> bool:
        """True when every page is eligible whatever the time (no filtering needed)."""
        return self._allow_unknown and not self._restricting and not self._deleted

    def record(self, page_id: str) -> dict[str, Any] | None:
        """The latest record of ``page_id`` (a copy), or None if there is none."""
        with self._lock:
            found = self._records.get(page_id)
            return dict(found) if found is not None else None

    def records(self) -> list[dict[str, Any]]:
        """The latest record of every page the catalog lists (copies), by page id."""
        with self._lock:
            return [dict(self._records[page]) for page in sorted(self._records)]

    def deleted(self, page_id: Hashable) -> bool:
        """Was ``page_id`` deleted (a tombstone read, no record since)?"""
        return page_id in self._deleted

    def __len__(self) -> int:
        return len(self._pages)

    def __contains__(self, page_id: object) -> bool:
        return page_id in self._pages


class CandidateSource(Protocol):
    """What :func:`recommend_eligible` needs of a model: ``Recommender.recommend``."""

    def recommend(
        self, user: Hashable, k: int, history: Any, exclude: Any
    ) -> list[tuple[Hashable, float]]: ...


class FiltersCandidates(Protocol):
    """A model that ranks only the pages a filter accepts (covisit, popularity).

    ``recommend_where(user, k, history, exclude, among, keep)`` returns what
    ``recommend(user, big, history, exclude)`` would, keeping only pages that are in
    ``among`` (when not None) and that ``keep`` accepts (when not None), cut to ``k``:
    the same pages, scores and order, without ranking refused pages. ``among`` (a
    category's pages) is tested with ``in``, which is cheap, before ``keep`` (the
    catalog's eligibility) is called; when the model's own shortlists do not hold ``k``
    accepted pages, it scans a copy of ``among`` (``list(among)``) instead of every page
    it knows. ``history`` is at most :data:`~online_model.base.MAX_HISTORY` pages and
    ``exclude`` a set: read, never modified.
    """

    def recommend_where(
        self,
        user: Hashable,
        k: int,
        history: list[Hashable],
        exclude: set[Hashable],
        among: Collection[Hashable] | None,
        keep: Callable[[Hashable], bool] | None,
    ) -> list[tuple[Hashable, float]]: ...


def recommend_eligible(
    model: CandidateSource,
    user: Hashable,
    k: int,
    history: list[Hashable] | list[str],
    exclude: set[Hashable] | set[str],
    catalog: Catalog | None,
    now_ms: int,
    over_fetch: int = OVER_FETCH,
    categories: frozenset[str] = _NONE,
) -> list[tuple[Hashable, float]]:
    """The model's top ``k`` eligible pages: as many as k when the model can rank that
    many eligible pages, fewer only when it has no more candidates. With ``categories``,
    only pages the catalog lists in one of them are eligible.

    >>> from online_model.models.popularity import DecayedPopularity
    >>> model = DecayedPopularity()
    >>> for n, page in enumerate("abcdefghij"):
    ...     for _ in range(10 - n):
    ...         model.learn_one("u", page)
    >>> catalog = Catalog()
    >>> for page in "abcdefgh":
    ...     catalog.apply(page, {"page_id": page, "available": False})
    >>> [page for page, _ in recommend_eligible(model, "v", 2, [], set(), catalog, 0)]
    ['i', 'j']
    >>> catalog.apply("j", {"page_id": "j", "categories": ["sport"]})
    >>> sport = frozenset({"sport"})
    >>> [page for page, _ in recommend_eligible(model, "v", 2, [], set(), catalog, 0, 4, sport)]
    ['j']
    """
    if k <= 0:
        return []
    if not categories:
        if catalog is None or catalog.filters_nothing:
            return model.recommend(user, k, history=history, exclude=exclude)
    elif catalog is None or not any(catalog.has_category(c) for c in categories):
        return []  # no page can match: do not make the model rank every page it knows
    if over_fetch < 2:
        raise ConfigurationError(f"over_fetch must be at least 2, got {over_fetch}")
    assert catalog is not None  # both branches above returned without one
    expected = catalog.eligible_share(categories)
    if expected < MODEL_FILTER_SHARE:
        where = getattr(model, "recommend_where", None)
        if where is not None:
            return _recommend_where(where, user, k, history, exclude, catalog, now_ms, categories)
    keep = _category_filter(catalog, now_ms, categories) if categories else None
    ask = min(max(k + 1, math.ceil(k * MARGIN / expected)), k * over_fetch**6)
    while True:
        candidates = model.recommend(user, ask, history=history, exclude=exclude)
        if keep is None:
            kept = [(page, score) for page, score in candidates if catalog.eligible(page, now_ms)]
        else:
            kept = [(page, score) for page, score in candidates if keep(page)]
        if len(kept) >= k or len(candidates) < ask:  # enough, or the model is exhausted
            return kept[:k]
        ask *= over_fetch


def _recommend_where(
    where: Callable[..., list[tuple[Hashable, float]]],
    user: Hashable,
    k: int,
    history: list[Hashable] | list[str],
    exclude: set[Hashable] | set[str],
    catalog: Catalog,
    now_ms: int,
    categories: frozenset[str],
) -> list[tuple[Hashable, float]]:
    """Hand the filter to a :class:`FiltersCandidates` model."""
    among = catalog.category_members(categories) if categories else None
    keep: Callable[[Hashable], bool] | None = None
    if not catalog.filters_nothing:
        eligible = catalog.eligible

        def keep(page: Hashable) -> bool:
            return eligible(page, now_ms)

    if len(history) > MAX_HISTORY:
        history = history[-MAX_HISTORY:]
    return where(user, k, history, exclude, among, keep)


def _category_filter(
    catalog: Catalog, now_ms: int, categories: frozenset[str]
) -> Callable[[Hashable], bool]:
    categories_of = catalog._categories  # the hot loop of a category rule: no method call
    eligible = catalog.eligible

    def keep(page: Hashable) -> bool:
        found = categories_of.get(page)  # type: ignore[call-overload]
        return found is not None and not found.isdisjoint(categories) and eligible(page, now_ms)

    return keep
