"""Synthetic stand-ins for public click and rating logs, for robustness checks of models.

The default model is judged on real logs we may not download, so each world here copies
the *shape* of one family of public logs from its published statistics, scaled down to
≈100k events (a prequential run of every candidate must fit in minutes on 2 cores):

``movielens``   MovieLens-1M/20M ratings read as views: ~100 ratings per user (min 20),
                most of them in one burst at sign-up with many in the same second (ties
                ordered by item id, like a stable sort of the (user, movie)-ordered files),
                strong popularity skew, new releases trending, list-browsing sequences.
``ecommerce``   YooChoose / Diginetica / RetailRocket sessions: mostly anonymous visitors
                (user = session), ~4 clicks per session, ~20 % re-clicks, next click mostly
                a neighbour in the category listing, large long-tailed catalogue.
``news``        Adressa / Globo / MIND: articles born continuously, each fading with a
                half-life of hours; visitors with 1-3 short sessions; the front page
                (what is hot *now*) drives most clicks, related-article links the rest.
``music``       Last.fm-1K listening: few heavy users, long sessions, album plays in track
                order, many repeats (unhittable under the protocol) and artist loyalty.
``generator``   ``streamrec generate`` defaults (topics, links, drift).

Every world is a pure function of ``(scale, seed)``; events are ``(user, page, ts_ms)``
integer tuples in time order (ties keep a fixed, documented order). These are stand-ins,
not the real logs: they carry the published marginals (sizes, session lengths, skew,
lifetimes, repeat rates, tie rates) and plausible mechanisms, never real co-occurrences.
"""

from __future__ import annotations

import bisect
import logging
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

from online_model.data.generate import generate

logger = logging.getLogger(__name__)

Event = tuple[int, int, int]
DAY_S = 86_400
START_S = 1_600_000_000


@dataclass
class World:
    """A generated log: ``events`` are ``(user, page, ts_ms)`` sorted by time."""

    name: str
    mimics: str
    events: list[Event] = field(repr=False)

    def stats(self) -> dict[str, Any]:
        """Shape statistics (compare with the published figures of the mimicked logs)."""
        users: dict[int, int] = {}
        seen: set[tuple[int, int]] = set()
        pops: dict[int, int] = {}
        repeats = ties = 0
        last: dict[int, int] = {}
        for u, p, t in self.events:
            users[u] = users.get(u, 0) + 1
            pops[p] = pops.get(p, 0) + 1
            if (u, p) in seen:
                repeats += 1
            seen.add((u, p))
            if last.get(u) == t:
                ties += 1
            last[u] = t
        n = len(self.events) or 1
        counts = sorted(pops.values(), reverse=True)
        per_user = sorted(users.values())
        top1 = sum(counts[: max(1, len(counts) // 100)])
        return {
            "n_events": len(self.events),
            "n_users": len(users),
            "n_items": len(pops),
            "events_per_user_mean": round(n / max(1, len(users)), 1),
            "events_per_user_median": per_user[len(per_user) // 2] if per_user else 0,
            "scored_share": round(sum(c - 1 for c in users.values()) / n, 3),
            "repeat_share": round(repeats / n, 3),
            "same_second_share": round(ties / n, 3),
            "top1pct_items_share": round(top1 / n, 3),
            "span_days": round((self.events[-1][2] - self.events[0][2]) / 86_400_000, 1)
            if self.events
            else 0.0,
        }


def _sorted_events(rows: list[tuple[float, int, int]]) -> list[Event]:
    """``(ts_s, user, page)`` rows -> time-ordered events, ties by (user, page)."""
    rows.sort()
    return [(u, p, int(t * 1000)) for t, u, p in rows]


class _Sampler:
    """Weighted choice among a fixed list, O(log n) per draw."""

    def __init__(self, items: list[int], weights: list[float]) -> None:
        self.items = items
        self.cum = list(accumulate(weights))

    def draw(self, rnd: random.Random) -> int:
        r = rnd.random() * self.cum[-1]
        return self.items[min(bisect.bisect_right(self.cum, r), len(self.items) - 1)]


def movielens_like(scale: float = 1.0, seed: int = 0) -> World:
    """MovieLens-1M/20M ratings as views (ML-1M: 6,040 users, 3,706 movies, 165/user).

    Users sign up over time and rate ~70 % of their movies in one burst (gaps: 40 %
    zero seconds, else ~20 s), the rest in a few later visits. Item ids grow with release
    date and same-second ratings are ordered by item id, as in the files. A rating picks
    the next title of the genre list the user is browsing (sorted by popularity, 20 %), a
    similar title (15 %), a recent release (10 %), or else a popular title of a liked
    genre (user taste x popularity, the item-kNN signal).
    """
    rnd = random.Random(seed)
    n_users, n_items, n_genres = int(1_500 * scale), 3_000, 18
    span = 1_000 * DAY_S
    # Items: release order = id order; 85 % of the catalogue predates the log.
    release = sorted(
        -rnd.random() * 20 * 365 * DAY_S if rnd.random() < 0.85 else rnd.random() * span
        for _ in range(n_items)
    )
    genre_size = [rnd.paretovariate(1.2) for _ in range(n_genres)]
    genre = [_Sampler(list(range(n_genres)), genre_size).draw(rnd) for _ in range(n_items)]
    pop = [rnd.lognormvariate(0.0, 1.6) for _ in range(n_items)]
    lists: list[list[int]] = [[] for _ in range(n_genres)]
    for i in sorted(range(n_items), key=lambda i: -pop[i]):
        lists[genre[i]].append(i)
    position = {i: pos for lst in lists for pos, i in enumerate(lst)}
    by_genre = [_Sampler(lst, [pop[i] for i in lst]) for lst in lists]
    similar = [
        [
            lists[genre[i]][min(len(lists[genre[i]]) - 1, max(0, position[i] + d))]
            for d in (-3, -2, -1, 1, 2, 3, 5, 8)
        ]
        for i in range(n_items)
    ]

    rows: list[tuple[float, int, int]] = []
    for u in range(n_users):
        taste = _Sampler(
            list(range(n_genres)),
            [rnd.gammavariate(0.3, 1.0) * genre_size[g] for g in range(n_genres)],
        )
        n = min(1_200, 20 + int(rnd.lognormvariate(math.log(50), 1.0)))
        join = rnd.random() * 0.2 * span if rnd.random() < 0.6 else rnd.random() * span
        n_first = max(20, int(n * rnd.betavariate(5, 2)))
        visits = [n_first, *_split(rnd, n - n_first, 1 + _poisson(rnd, 3))]
        seen: set[int] = set()
        t = join
        for v, size in enumerate(visits):
            if v:
                t = min(span, t + rnd.expovariate(1 / (60 * DAY_S)))
            prev = -1
            for _ in range(size):
                item = -1
                for _try in range(20):
                    r = rnd.random()
                    if prev >= 0 and r < 0.2:
                        lst = lists[genre[prev]]
                        cand = lst[min(len(lst) - 1, position[prev] + 1 + _geometric(rnd, 0.5))]
                    elif prev >= 0 and r < 0.35:
                        cand = rnd.choice(similar[prev])
                    elif r < 0.45:
                        cand = _recent_release(rnd, release, t, pop)
                    else:
                        cand = by_genre[taste.draw(rnd)].draw(rnd)
                    if cand >= 0 and cand not in seen and release[cand] <= t:
                        item = cand
                        break
                if item < 0:
                    continue
                seen.add(item)
                rows.append((math.floor(t), u, item))
                prev = item
                t += 0.0 if rnd.random() < 0.4 else rnd.expovariate(1 / 20)
    return World(
        "movielens",
        "MovieLens-1M/20M ratings as views",
        _sorted_events([(START_S + t, u, p) for t, u, p in rows]),
    )


def _recent_release(rnd: random.Random, release: list[float], t: float, pop: list[float]) -> int:
    """A popular title released in the 60 days before ``t`` (or -1)."""
    hi = bisect.bisect_right(release, t)
    lo = bisect.bisect_left(release, t - 60 * DAY_S)
    if hi <= lo:
        return -1
    cands = range(lo, hi)
    return _Sampler(list(cands), [pop[i] for i in cands]).draw(rnd)


def ecommerce_sessions_like(scale: float = 1.0, seed: int = 0) -> World:
    """YooChoose / Diginetica / RetailRocket click sessions (YooChoose: ~4 clicks/session).

    75 % of sessions are anonymous (a fresh user per session); the rest come from a pool
    of returning shoppers with category preferences. After the first click: 20 % re-click
    an item of the session, 40 % a neighbour in the category listing, 20 % a popular item
    of the same category, 20 % a complementary category. 20 % of items launch during the
    30 days and item popularity drifts half-way (promotions, seasons).
    """
    rnd = random.Random(seed)
    n_items, n_cats = 12_000, 250
    n_sessions = int(32_000 * scale)
    span = 30 * DAY_S
    cat_pop = [rnd.lognormvariate(0, 1.2) for _ in range(n_cats)]
    cat_of = [_Sampler(list(range(n_cats)), cat_pop).draw(rnd) for _ in range(n_items)]
    launch = [0.0 if rnd.random() < 0.8 else rnd.random() * span for _ in range(n_items)]
    pop1 = [rnd.lognormvariate(0, 1.5) for _ in range(n_items)]
    pop2 = [p * rnd.lognormvariate(0, 0.8) for p in pop1]
    listing: list[list[int]] = [[] for _ in range(n_cats)]
    for i in range(n_items):
        listing[cat_of[i]].append(i)  # listing order = e.g. price: unrelated to popularity
    for lst in listing:
        rnd.shuffle(lst)
    position = {i: pos for lst in listing for pos, i in enumerate(lst)}
    samplers = [
        [_Sampler(lst or [0], [p[i] for i in lst] or [1.0]) for lst in listing]
        for p in (pop1, pop2)
    ]
    cat_sampler = _Sampler(list(range(n_cats)), cat_pop)
    complements = [[cat_sampler.draw(rnd) for _ in range(3)] for _ in range(n_cats)]
    n_returning = int(3_000 * scale)
    fav = [[cat_sampler.draw(rnd) for _ in range(3)] for _ in range(n_returning)]
    activity = _Sampler(
        list(range(n_returning)), [rnd.paretovariate(1.5) for _ in range(n_returning)]
    )

    def pick(cat: int, t: float) -> int:
        for _ in range(10):
            i = samplers[t > span / 2][cat].draw(rnd)
            if launch[i] <= t:
                return i
        return -1

    rows: list[tuple[float, int, int]] = []
    for s in range(n_sessions):
        t = _diurnal(rnd, span)
        if rnd.random() < 0.75:
            user, cat = n_returning + s, cat_sampler.draw(rnd)
        else:
            user = activity.draw(rnd)
            cat = rnd.choice(fav[user]) if rnd.random() < 0.6 else cat_sampler.draw(rnd)
        length = 1 + _geometric(rnd, 1 / 3.5)
        session: list[int] = []
        item = pick(cat, t)
        while len(session) < length and item >= 0:
            session.append(item)
            rows.append((START_S + t, user, item))
            t += rnd.expovariate(1 / 90)
            r, c = rnd.random(), cat_of[item]
            if r < 0.2:
                nxt = rnd.choice(session)
            elif r < 0.6:
                lst = listing[c]
                off = (1 + _geometric(rnd, 0.5)) * (1 if rnd.random() < 0.6 else -1)
                nxt = lst[(position[item] + off) % len(lst)]
                nxt = nxt if launch[nxt] <= t else pick(c, t)
            elif r < 0.8:
                nxt = pick(c, t)
            else:
                nxt = pick(rnd.choice(complements[c]), t)
            item = nxt if nxt >= 0 else pick(cat_sampler.draw(rnd), t)
    return World(
        "ecommerce", "YooChoose / Diginetica / RetailRocket sessions", _sorted_events(rows)
    )


def news_like(scale: float = 1.0, seed: int = 0) -> World:
    """Adressa / Globo / MIND news clicks over 7 days: items live for hours.

    ~400 articles a day, each with a lognormal appeal fading with a half-life of ~6 h
    (lognormal spread); 55 % of visitors come once. A click is the front page (appeal x
    freshness, any section) for 50 %, the user's favourite section for 20 %, and a
    related article (same section, published near the same time) for 30 % of in-session
    clicks. Sessions average ~2 clicks; articles are rarely re-read.
    """
    rnd = random.Random(seed)
    n_cats, span, slot = 12, 7 * DAY_S, 900
    birth = sorted(_diurnal(rnd, span + 2 * DAY_S) - 2 * DAY_S for _ in range(3_600))
    n_items = len(birth)
    cat_size = [rnd.lognormvariate(0, 0.8) for _ in range(n_cats)]
    cats = _Sampler(list(range(n_cats)), cat_size)
    cat_of = [cats.draw(rnd) for _ in range(n_items)]
    appeal = [rnd.lognormvariate(0, 1.2) for _ in range(n_items)]
    half_life = [3_600 * 6 * rnd.lognormvariate(0, 0.5) for _ in range(n_items)]
    by_cat: list[list[int]] = [[] for _ in range(n_cats)]
    for i in range(n_items):
        by_cat[cat_of[i]].append(i)
    related = []
    for i in range(n_items):
        lst = by_cat[cat_of[i]]
        pos = lst.index(i)
        near = lst[max(0, pos - 6) : pos] + lst[pos + 1 : pos + 4]  # mostly older stories
        related.append(rnd.sample(near, min(4, len(near))))
    cache: dict[tuple[int, int], _Sampler] = {}

    def front(t: float, cat: int) -> int:
        key = (int(t // slot), cat)
        s = cache.get(key)
        if s is None:
            now = key[0] * slot
            hi = bisect.bisect_right(birth, now)
            lo = bisect.bisect_left(birth, now - 4 * DAY_S)
            live = [i for i in range(lo, hi) if cat < 0 or cat_of[i] == cat] or [max(0, hi - 1)]
            s = cache[key] = _Sampler(
                live, [appeal[i] * 2 ** (-(now - birth[i]) / half_life[i]) for i in live]
            )
        return s.draw(rnd)

    rows: list[tuple[float, int, int]] = []
    n_users = int(30_000 * scale)
    for u in range(n_users):
        fav = cats.draw(rnd)
        n_visits = 1 if rnd.random() < 0.55 else 2 + int(rnd.paretovariate(1.3))
        seen: set[int] = set()
        for _ in range(min(n_visits, 60)):
            t = _diurnal(rnd, span)
            length = 1 + _geometric(rnd, 1 / 1.2)
            prev = -1
            for _k in range(length):
                item = -1
                for _try in range(10):
                    r = rnd.random()
                    if prev >= 0 and r < 0.3:
                        cand = rnd.choice(related[prev]) if related[prev] else -1
                    elif r < 0.5:
                        cand = front(t, fav)
                    else:
                        cand = front(t, -1)
                    if cand >= 0 and cand not in seen and birth[cand] <= t:
                        item = cand
                        break
                if item < 0:
                    break
                seen.add(item)
                rows.append((START_S + t, u, item))
                prev = item
                t += rnd.expovariate(1 / 70)
    return World("news", "Adressa / Globo / MIND news clicks", _sorted_events(rows))


def music_like(scale: float = 1.0, seed: int = 0) -> World:
    """Last.fm-1K listening (992 users, ~19k plays each): scaled to ~200 plays per user.

    1,200 artists (Zipf popularity, 20 genres), 1-4 albums of 8-14 tracks. Sessions of
    ~14 plays, one play per ~3.5 min. After a play: the album's next track (45 %), a top
    track of the same artist (15 %), a replay of something the user already played
    (25 %: unhittable when history is excluded), else another artist (favourites 70 %).
    """
    rnd = random.Random(seed)
    n_artists, n_genres = 1_200, 20
    artist_pop = [1.0 / (r + 1) for r in range(n_artists)]
    rnd.shuffle(artist_pop)
    genre_of = [rnd.randrange(n_genres) for _ in range(n_artists)]
    albums: list[list[list[int]]] = []
    n_tracks = 0
    for _ in range(n_artists):
        art = []
        for _a in range(1 + min(3, _poisson(rnd, 1.0))):
            size = rnd.randint(8, 14)
            art.append(list(range(n_tracks, n_tracks + size)))
            n_tracks += size
        albums.append(art)
    artist_of = [a for a, art in enumerate(albums) for alb in art for _ in alb]
    album_of: dict[int, tuple[int, int]] = {
        t: (a, k) for a, art in enumerate(albums) for k, alb in enumerate(art) for t in alb
    }
    # A few hits per artist: track popularity Zipf within the artist.
    tops = [
        _Sampler(
            [t for alb in art for t in alb],
            [1.0 / (1 + r) ** 1.2 for r in range(sum(len(x) for x in art))],
        )
        for art in albums
    ]
    for s in tops:
        rnd.shuffle(s.items)

    rows: list[tuple[float, int, int]] = []
    span = 90 * DAY_S
    for u in range(int(700 * scale)):
        taste = [rnd.gammavariate(0.2, 1.0) for _ in range(n_genres)]
        discover = _Sampler(
            list(range(n_artists)),
            [artist_pop[a] * (taste[genre_of[a]] + 1e-3) for a in range(n_artists)],
        )
        fav = list({discover.draw(rnd) for _ in range(5 + _poisson(rnd, 10))})
        played: list[int] = []
        n_plays = min(2_000, int(rnd.lognormvariate(math.log(130), 0.9)))
        while len(played) < n_plays:
            t = rnd.random() * span
            track = -1
            for _ in range(1 + _geometric(rnd, 1 / 14)):
                r = rnd.random()
                if track >= 0 and r < 0.45:
                    a, k = album_of[track]
                    alb = albums[a][k]
                    nxt = alb[alb.index(track) + 1] if track != alb[-1] else -1
                elif track >= 0 and r < 0.6:
                    nxt = tops[artist_of[track]].draw(rnd)
                elif played and r < 0.85:
                    nxt = rnd.choice(played[-300:])
                else:
                    nxt = -1
                if nxt < 0:
                    artist = rnd.choice(fav) if rnd.random() < 0.7 else discover.draw(rnd)
                    if artist not in fav:
                        fav.append(artist)
                    nxt = (
                        rnd.choice(albums[artist])[0]
                        if rnd.random() < 0.5
                        else tops[artist].draw(rnd)
                    )
                track = nxt
                played.append(track)
                rows.append((START_S + t, u, track))
                t += max(60.0, rnd.gauss(215, 60))
    return World("music", "Last.fm-1K listening logs", _sorted_events(rows))


def generator_default(scale: float = 1.0, seed: int = 42) -> World:
    """``streamrec generate`` defaults (2,000 users, 1,000 pages, 100,000 events)."""
    views = generate(n_users=max(50, int(2_000 * scale)), n_events=int(100_000 * scale), seed=seed)
    events = list(zip(views.user.tolist(), views.page.tolist(), views.ts_ms.tolist(), strict=True))
    return World("generator", "streamrec generate defaults", events)


WORLDS: dict[str, Callable[..., World]] = {
    "movielens": movielens_like,
    "ecommerce": ecommerce_sessions_like,
    "news": news_like,
    "music": music_like,
    "generator": generator_default,
}


def make_world(name: str, scale: float = 1.0, seed: int | None = None) -> World:
    """Build world ``name`` at ``scale`` (1.0 ≈ 100k-150k events)."""
    fn = WORLDS[name]
    return fn(scale) if seed is None else fn(scale, seed)


def _diurnal(rnd: random.Random, span: float) -> float:
    """A time in ``[0, span)`` seconds, busier in the day than at night."""
    while True:
        t = rnd.random() * span
        if rnd.random() < 0.6 + 0.4 * math.sin(2 * math.pi * (t % DAY_S) / DAY_S - 1.9):
            return t


def _geometric(rnd: random.Random, p: float) -> int:
    """Failures before the first success (mean ``(1 - p) / p``)."""
    return int(math.log(1.0 - rnd.random()) / math.log(1.0 - p)) if p < 1 else 0


def _poisson(rnd: random.Random, lam: float) -> int:
    n, prod, limit = 0, rnd.random(), math.exp(-lam)
    while prod > limit:
        n += 1
        prod *= rnd.random()
    return n


def _split(rnd: random.Random, total: int, parts: int) -> list[int]:
    cuts = sorted(rnd.randint(0, total) for _ in range(parts - 1))
    return [b - a for a, b in zip([0, *cuts], [*cuts, total], strict=True)]


if __name__ == "__main__":
    import json

    for world_name in WORLDS:
        print(world_name, json.dumps(make_world(world_name).stats()))
