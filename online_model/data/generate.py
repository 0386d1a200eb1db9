"""Synthetic page views with the structure of real click logs.

Pages belong to topics and have heavy-tailed (Zipf) popularity; every page links to a
few related pages, mostly of its own topic. Users have sparse topic preferences and
heavy-tailed activity. They browse in sessions: the next page usually follows a link of
the current page, sometimes another popular page of the same topic, sometimes a new topic.
Part way through the timeline half of the users change their preferences (drift).

With ``new_pages`` > 0, that share of the pages is published during the timeline
instead of before it: no view of such a page comes before its publication time (views
that would have are redrawn from the same topic), so the log holds pages that appear
and are read at once, as on a news or shop site. :func:`write_catalog` writes the
matching page catalog (topic as category, publication time) for ``streamrec catalog load``.

Everything is vectorised with numpy across sessions, so a million events take seconds,
and the output is a pure function of the arguments (same seed, same bytes).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

HEADER = "user_id,page_id,ts_ms,session_id"


@dataclass(frozen=True)
class GeneratorConfig:
    """Knobs of the synthetic world; defaults give a realistic mid-size site."""

    n_users: int = 2_000
    n_pages: int = 1_000
    n_events: int = 100_000
    seed: int = 42
    start_ms: int = 1_700_000_000_000
    span_days: float = 14.0
    mean_session_length: float = 6.0
    n_links: int = 8
    p_follow_link: float = 0.55
    p_same_topic: float = 0.25
    zipf_exponent: float = 1.0
    drift_at: float = 0.6
    drift_fraction: float = 0.5
    #: Share of pages published during the timeline (uniformly over its middle 80 %).
    new_pages: float = 0.0


@dataclass
class PageViews:
    """Generated events as parallel integer arrays, sorted by time."""

    user: np.ndarray
    page: np.ndarray
    ts_ms: np.ndarray
    session: np.ndarray
    #: Per page: its topic, and when it was published (the timeline's start for most).
    topic: np.ndarray | None = None
    published_ms: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.user.shape[0])

    def rows(self) -> list[tuple[str, str, int, str]]:
        """Events as ``(user_id, page_id, ts_ms, session_id)`` string tuples."""
        return [
            (f"u{u}", f"p{p}", int(t), f"s{s}")
            for u, p, t, s in zip(
                self.user.tolist(),
                self.page.tolist(),
                self.ts_ms.tolist(),
                self.session.tolist(),
                strict=True,
            )
        ]


def _sample_in_segments(
    rng: np.random.Generator, cum: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> np.ndarray:
    """Draw index ``i`` in ``[lo, hi)`` with probability ``cum[i+1] - cum[i]`` (vectorised)."""
    r = cum[lo] + rng.random(lo.shape[0]) * (cum[hi] - cum[lo])
    idx = np.searchsorted(cum, r, side="right") - 1
    return np.clip(idx, lo, hi - 1)


def generate(config: GeneratorConfig | None = None, **overrides: object) -> PageViews:
    """Generate page views; keyword ``overrides`` replace fields of ``config``.

    Examples
    --------
    >>> views = generate(n_users=50, n_pages=40, n_events=500, seed=1)
    >>> len(views), views.rows()[0][0].startswith("u")
    (500, True)
    >>> bool((np.diff(views.ts_ms) >= 0).all())
    True
    """
    cfg = config or GeneratorConfig()
    if overrides:
        cfg = GeneratorConfig(**{**cfg.__dict__, **overrides})
    if min(cfg.n_users, cfg.n_pages, cfg.n_events) <= 0:
        raise ValueError("n_users, n_pages and n_events must be positive")
    if not 0.0 <= cfg.new_pages < 1.0:
        raise ValueError(f"new_pages must be in [0, 1), got {cfg.new_pages}")
    rng = np.random.default_rng(cfg.seed)
    n_pages, n_users = cfg.n_pages, cfg.n_users
    n_topics = int(np.clip(n_pages // 50, 1, 100))

    # Pages: every topic non-empty; popularity Zipf over a random order.
    topic_of = rng.permutation(np.arange(n_pages) % n_topics)
    popularity = 1.0 / (rng.permutation(n_pages) + 1.0) ** cfg.zipf_exponent
    by_topic = np.argsort(topic_of, kind="stable")
    cum = np.concatenate([[0.0], np.cumsum(popularity[by_topic])])
    bounds = np.searchsorted(topic_of[by_topic], np.arange(n_topics + 1))
    t_lo, t_hi = bounds[:-1], bounds[1:]

    def page_in_topic(topics: np.ndarray) -> np.ndarray:
        return by_topic[_sample_in_segments(rng, cum, t_lo[topics], t_hi[topics])]

    def page_anywhere(n: int) -> np.ndarray:
        lo = np.zeros(n, dtype=np.int64)
        return by_topic[_sample_in_segments(rng, cum, lo, lo + n_pages)]

    # Links: mostly same topic, some anywhere; earlier links are clicked more.
    n_links = cfg.n_links
    src_topics = np.repeat(topic_of, n_links)
    links = page_in_topic(src_topics).reshape(n_pages, n_links)
    cross = rng.random((n_pages, n_links)) < 0.2
    links[cross] = page_anywhere(int(cross.sum()))
    link_p = 1.0 / np.arange(1, n_links + 1)
    link_p /= link_p.sum()

    # Users: sparse topic preferences, drifted copy, heavy-tailed activity.
    def preferences() -> np.ndarray:
        pref = rng.dirichlet(np.full(n_topics, 0.2), size=n_users)
        # Offsetting row u by u makes one increasing array: one searchsorted for all users.
        return (np.cumsum(pref, axis=1) + np.arange(n_users)[:, None]).ravel()

    pref_before = preferences()
    pref_after = preferences()
    drifts = rng.random(n_users) < cfg.drift_fraction
    activity = rng.lognormal(0.0, 1.0, n_users)
    activity_cum = np.concatenate([[0.0], np.cumsum(activity)])

    # Sessions.
    n_sessions = int(cfg.n_events / cfg.mean_session_length * 1.2) + 16
    lengths = rng.geometric(1.0 / cfg.mean_session_length, n_sessions)
    ends = np.cumsum(lengths)
    n_sessions = int(np.searchsorted(ends, cfg.n_events)) + 1
    lengths = lengths[:n_sessions].copy()
    lengths[-1] -= int(ends[n_sessions - 1] - cfg.n_events)
    zeros = np.zeros(n_sessions, dtype=np.int64)
    s_user = _sample_in_segments(rng, activity_cum, zeros, zeros + n_users)
    span_ms = cfg.span_days * 86_400_000
    s_start = rng.random(n_sessions) * span_ms
    after = (s_start > cfg.drift_at * span_ms) & drifts[s_user]

    def topic_of_user(users: np.ndarray, late: np.ndarray) -> np.ndarray:
        r = users + rng.random(users.shape[0])
        idx = np.where(
            late,
            np.searchsorted(pref_after, r, side="right"),
            np.searchsorted(pref_before, r, side="right"),
        )
        return np.minimum(idx - users * n_topics, n_topics - 1)

    max_len = int(lengths.max())
    pages = np.empty((n_sessions, max_len), dtype=np.int64)
    pages[:, 0] = page_in_topic(topic_of_user(s_user, after))
    for pos in range(1, max_len):
        alive = np.flatnonzero(lengths > pos)
        prev = pages[alive, pos - 1]
        r = rng.random(alive.shape[0])
        nxt = links[prev, rng.choice(n_links, size=alive.shape[0], p=link_p)]
        same = (r >= cfg.p_follow_link) & (r < cfg.p_follow_link + cfg.p_same_topic)
        if same.any():
            nxt[same] = page_in_topic(topic_of[prev[same]])
        new = r >= cfg.p_follow_link + cfg.p_same_topic
        if new.any():
            nxt[new] = page_in_topic(topic_of_user(s_user[alive[new]], after[alive[new]]))
        pages[alive, pos] = nxt

    # Flatten, timestamp (dwell times ~ exponential, mean 40 s) and sort by time.
    mask = np.arange(max_len)[None, :] < lengths[:, None]
    dwell = rng.exponential(40_000.0, size=(n_sessions, max_len))
    dwell[:, 0] = 0.0
    ts = s_start[:, None] + np.cumsum(dwell, axis=1)
    session_ids = np.broadcast_to(np.arange(n_sessions)[:, None], mask.shape)[mask]
    users = np.broadcast_to(s_user[:, None], mask.shape)[mask]
    ts_ms = (ts[mask] + cfg.start_ms).astype(np.int64)
    viewed = pages[mask]
    published = np.full(n_pages, cfg.start_ms, dtype=np.int64)
    if cfg.new_pages:
        # A generator of its own: the default log does not change with this feature.
        late_rng = np.random.default_rng([cfg.seed, 1])
        is_late = late_rng.random(n_pages) < cfg.new_pages
        # Each topic's most popular page is out from the start, so that a view can
        # always be redrawn from its topic.
        heads = [t_pages[np.argmax(popularity[t_pages])] for t_pages in _by_topic(topic_of)]
        is_late[heads] = False
        late = np.flatnonzero(is_late)
        published[late] = cfg.start_ms + (0.1 + 0.8 * late_rng.random(late.size)) * span_ms
        viewed = _published_views(viewed, ts_ms, published, topic_of, page_in_topic)
    order = np.argsort(ts_ms, kind="stable")
    logger.debug("generated n_events=%d n_sessions=%d", mask.sum(), n_sessions)
    return PageViews(
        users[order], viewed[order], ts_ms[order], session_ids[order], topic_of, published
    )


def _by_topic(topic_of: np.ndarray) -> list[np.ndarray]:
    order = np.argsort(topic_of, kind="stable")
    return np.split(order, np.flatnonzero(np.diff(topic_of[order])) + 1)


def _published_views(
    pages: np.ndarray,
    ts_ms: np.ndarray,
    published: np.ndarray,
    topic_of: np.ndarray,
    page_in_topic: Callable[[np.ndarray], np.ndarray],
    tries: int = 20,
) -> np.ndarray:
    """``pages`` with every view before its page's publication redrawn from the page's
    topic among pages already out (after ``tries`` draws: the topic's first page out)."""
    pages = pages.copy()
    early = np.flatnonzero(ts_ms < published[pages])
    for _ in range(tries):
        if not early.size:
            return pages
        pages[early] = page_in_topic(topic_of[pages[early]])
        early = early[ts_ms[early] < published[pages[early]]]
    for i in early.tolist():  # rare: a topic whose likely pages are all still to come
        same = np.flatnonzero(topic_of == topic_of[pages[i]])
        pages[i] = same[np.argmin(published[same])]  # its head, out from the start
    return pages


def page_catalog(views: PageViews) -> dict[str, dict[str, Any]]:
    """Each page of ``views``: ``{"categories": ["t<topic>"], "published_at": ms}``."""
    if views.topic is None or views.published_ms is None:
        raise ValueError("these views carry no page catalog")
    return {
        f"p{p}": {"categories": [f"t{t}"], "published_at": ms}
        for p, (t, ms) in enumerate(
            zip(views.topic.tolist(), views.published_ms.tolist(), strict=True)
        )
    }


def write_catalog(views: PageViews, path: str | os.PathLike[str]) -> int:
    """Write :func:`page_catalog` as a CSV: ``page_id,categories,published_at`` (epoch
    ms), the file ``streamrec catalog load`` reads."""
    pages = page_catalog(views)
    lines = [f"{p},{meta['categories'][0]},{meta['published_at']}" for p, meta in pages.items()]
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write("page_id,categories,published_at\n")
        fh.write("\n".join(lines) + "\n")
    return len(lines)


def write_csv(views: PageViews, path: str | os.PathLike[str]) -> int:
    """Write ``views`` as CSV with header ``user_id,page_id,ts_ms,session_id``."""
    lines = [
        f"u{u},p{p},{t},s{s}"
        for u, p, t, s in zip(
            views.user.tolist(),
            views.page.tolist(),
            views.ts_ms.tolist(),
            views.session.tolist(),
            strict=True,
        )
    ]
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(HEADER + "\n")
        if lines:
            fh.write("\n".join(lines))
            fh.write("\n")
    return len(lines)
