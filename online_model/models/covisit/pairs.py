"""Co-visitation pairs counted over columns of views: the part of a bulk rebuild that runs
on executors (:func:`online_model.models.covisit.batch.bulk_statistics` hands it slices of users).

Map: :func:`pair_buckets` sums one slice's links per pair and splits them by source page
into buckets; reduce: :func:`strongest_links` merges a bucket's parts and keeps each
source page's strongest links and its total outgoing weight. Pages are codes into a
table sorted by name, so a larger code is a larger name (the tie-break of
:func:`online_model.models.covisit.batch.strongest`).

Only numpy here: an executor that unpickles :func:`pair_sums` imports this module alone,
not the models (River and SciPy take about a second to import on each worker).
"""

from __future__ import annotations

import numpy as np


def pair_sums(
    views: tuple[np.ndarray, np.ndarray, np.ndarray],
    window: int,
    decay: float,
    back: float,
    n_pages: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The links of users' views, summed per pair: ``(src * n_pages + dst, weight)``.

    ``views`` are ``(user, page, weight)`` columns, grouped by user, in learning order
    within each user, with each view's weight against the final origin. The view at
    distance ``d`` (1..window) before a view of the same user is its ``d``-th previous
    page (:func:`~online_model.models.covisit.batch.user_transitions`: the history holds repeats
    too, a repeat does not
    link); same float operations per link.
    """
    user, page, weight = views
    keys: list[np.ndarray] = []
    sums: list[np.ndarray] = []
    for d in range(1, window + 1):
        if len(user) <= d:
            break
        linked = (user[d:] == user[:-d]) & (page[d:] != page[:-d])
        src = page[:-d][linked].astype(np.int64)
        dst = page[d:][linked].astype(np.int64)
        w = weight[d:][linked] * (decay ** (d - 1))
        keys.append(src * n_pages + dst)
        sums.append(w)
        if back:
            keys.append(dst * n_pages + src)
            sums.append(w * back)
    if not keys:
        return np.empty(0, np.int64), np.empty(0, np.float64)
    return _sum_by_key(np.concatenate(keys), np.concatenate(sums), n_pages * n_pages)


def _sum_by_key(
    keys: np.ndarray, weights: np.ndarray, n_keys: int
) -> tuple[np.ndarray, np.ndarray]:
    """Distinct keys (ascending) and the sum of their weights."""
    if n_keys <= max(1 << 22, 4 * len(keys)):
        # A dense count is one O(n) pass where the key space is small (most catalogs).
        present = np.flatnonzero(np.bincount(keys, minlength=n_keys))
        return present, np.bincount(keys, weights=weights, minlength=n_keys)[present]
    distinct, inverse = np.unique(keys, return_inverse=True)
    return distinct, np.bincount(inverse, weights=weights, minlength=len(distinct))


def pair_buckets(
    views: tuple[np.ndarray, np.ndarray, np.ndarray],
    window: int,
    decay: float,
    back: float,
    n_pages: int,
    n_buckets: int,
) -> list[tuple[int, tuple[np.ndarray, np.ndarray]]]:
    """:func:`pair_sums` of ``views``, split into ``n_buckets`` by source page."""
    keys, sums = pair_sums(views, window, decay, back, n_pages)
    bucket = (keys // n_pages) % n_buckets
    return [(b, (keys[bucket == b], sums[bucket == b])) for b in range(n_buckets)]


def strongest_links(
    parts: list[tuple[np.ndarray, np.ndarray]], n_pages: int, kept: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Merge per-pair sums; keep the ``kept`` strongest links of each source page.

    Returns ``(src, dst, weight)`` of the kept links, grouped by source, heaviest first
    (ties: larger page name first), and ``(sources, out)``: each source page's total
    weight over all its links.
    """
    keys, sums = parts[0] if parts else (np.empty(0, np.int64), np.empty(0, np.float64))
    if len(parts) > 1:
        keys, sums = _sum_by_key(
            np.concatenate([k for k, _ in parts]),
            np.concatenate([w for _, w in parts]),
            n_pages * n_pages,
        )
    if not len(keys):
        return keys, keys, sums, keys, sums
    # Keys ascend by (src, dst): each source's links are one run, dst ascending.
    src = keys // n_pages
    starts = np.flatnonzero(np.r_[True, src[1:] != src[:-1]])
    ends = np.r_[starts[1:], len(keys)]
    picked = np.concatenate(
        [
            _strongest(sums, keys, a, b, kept)
            for a, b in zip(starts.tolist(), ends.tolist(), strict=True)
        ]
    )
    totals = np.add.reduceat(sums, starts)
    return src[picked], keys[picked] % n_pages, sums[picked], src[starts], totals


def _strongest(sums: np.ndarray, keys: np.ndarray, a: int, b: int, kept: int) -> np.ndarray:
    """Positions of the ``kept`` heaviest links in ``[a, b)``, heaviest first; among equal
    weights the larger key (page) first, as :func:`~online_model.models.covisit.batch.strongest`."""
    weights = sums[a:b]
    if b - a > kept:
        # Partition instead of sorting the whole run: keep what beats the kept-th weight,
        # then the largest keys among those equal to it.
        cut = np.partition(weights, b - a - kept)[b - a - kept]
        above = np.flatnonzero(weights > cut)
        tied = np.flatnonzero(weights == cut)[::-1][: kept - len(above)]
        chosen = np.concatenate([above, tied])
    else:
        chosen = np.arange(b - a)
    order = np.lexsort((-keys[a:b][chosen], -weights[chosen]))
    return a + chosen[order]
