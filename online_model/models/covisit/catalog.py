"""Catalog changes in a co-visitation model: forgetting pages, serving through filters.

:func:`drop_pages` takes deleted pages out of the graph and the user buffers (the model
drops their popularity and resets its caches and change tracking around it);
:func:`recommend_where` ranks only the pages a filter keeps
(:class:`online_model.catalog.FiltersCandidates`) with the scores of the dict path
(:mod:`online_model.models.covisit.scoring`).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Collection, Hashable, Sequence
from operator import itemgetter

from online_model.models.covisit.scoring import Scored, pop_corrected, transition_sums


def drop_pages(
    neighbours: dict[Hashable, dict[Hashable, float]],
    out: dict[Hashable, float],
    histories: OrderedDict[Hashable, list[Hashable]],
    gone: set[Hashable],
) -> None:
    """Remove the pages ``gone`` from the graph, in place: their rows, the links into them
    from other rows (whose outgoing weight ``out`` shrinks by as much, so the remaining
    transitions share what the page had) and their places in the users' recent pages.
    O(rows + users) whatever the number of pages."""
    for page in gone:
        neighbours.pop(page, None)
        out.pop(page, None)
    for src, row in list(neighbours.items()):
        if row.keys().isdisjoint(gone):
            continue
        for page in gone.intersection(row):
            out[src] -= row.pop(page)
        if not row:
            del neighbours[src]
            del out[src]
        elif out[src] <= 0.0:  # float residue: keep P(next | src) a probability
            out[src] = sum(row.values())
    for user, hist in histories.items():
        if not gone.isdisjoint(hist):
            histories[user] = [page for page in hist if page not in gone]


def recommend_where(
    model: Scored,
    user: Hashable,
    k: int,
    history: Sequence[Hashable],
    exclude: Collection[Hashable],
    among: Collection[Hashable] | None,
    keep: Callable[[Hashable], bool] | None,
) -> list[tuple[Hashable, float]]:
    """:meth:`Covisitation.recommend_where`: the top ``k`` of ``recommend`` among the
    pages in ``among`` that ``keep`` accepts, filtered while ranking (popular pages before
    it, transition candidates once they beat the k-th fill)."""
    if k <= 0:
        return []
    scores, total_weight = transition_sums(model, history)
    pop = model._popularity
    b = model._mixture
    # Popular pages that are not candidates, best first, from the top list.
    fills: list[tuple[Hashable, float]] = []
    top = pop.top()
    for item, p in top if among is None else pop.top_among(among):
        if item not in scores and item not in exclude and (keep is None or keep(item)):
            fills.append((item, b * p))
            if len(fills) >= k:
                break
    # k fills score at least ``floor``: a candidate below it cannot make the top k.
    floor = fills[-1][1] if len(fills) >= k else -math.inf
    ranked: list[tuple[Hashable, float]] = []
    if scores:
        if model.pop_exponent:
            scores = pop_corrected(model, scores)
        norm = (1.0 - b) / total_weight
        counts, scale = pop._counts, (b / pop._total if b else 0.0)
        for i, s in scores.items():
            v = s * norm + scale * counts[i] if b else s * norm
            if (
                v >= floor
                and (among is None or i in among)
                and i not in exclude
                and (keep is None or keep(i))
            ):
                ranked.append((i, v))
    if len(fills) < k and top and len(pop._top) < len(pop._counts):
        # A page past the top list scores at most b x the top list's last share: it
        # can only enter when fewer than k accepted pages score that much (rare: ask
        # ``among``, or every page, for the popular pages the top list lacks).
        bound = b * top[-1][1]
        if sum(1 for _, v in ranked if v >= bound) + len(fills) < k:
            more = pop.recommend_where(user, k + len(scores), (), exclude, among, keep)
            fills += [
                (item, b * p) for item, p in more if item not in scores and item not in pop._top
            ][: k - len(fills)]
    ranked += fills
    ranked.sort(key=itemgetter(1), reverse=True)  # stable: ties keep candidates first
    return ranked[:k]
