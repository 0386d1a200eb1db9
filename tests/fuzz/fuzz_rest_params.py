"""Fuzz the scorer's REST parameter parsing: what a caller's URL and body become.

The first byte of an input picks what the rest is:

* 0: a query string of ``GET /recommendations/{user_id}``, read as aiohttp reads it
  (yarl's multidict): ``k`` through :func:`~streams.scorer.web.parse_k` (ValueError is
  the 400), ``category``/``exclude`` through
  :func:`~streams.catalog.rules.parse_rules` (BadRule is the 400);
* 1: the body of ``POST /models/promote`` (:func:`~streams.scorer.web.parse_promote_body`:
  None is the 400);
* 2: the query string of ``GET /console/state``: ``since`` through
  :func:`~streams.scorer.console.parse_since` (ValueError is the 400);
* 3: the ``{user_id}`` path segment, decoded as aiohttp decodes it, then what the scorer
  does with a user id before any Redis call: its history keys and its experiment arm.

Any exception but the one that becomes the 400 is a crash (a 500 for that request).
"""

from __future__ import annotations

import contextlib

from tests.fuzz.harness import check, instrumented, main

with instrumented(__name__):
    from yarl import URL

    from streams.catalog.rules import parse_rules
    from streams.errors import BadRule
    from streams.experiment.assignment import arm_of
    from streams.scorer.console import parse_since
    from streams.scorer.web import parse_k, parse_promote_body
    from streams.settings import MAX_K
    from streams.state.keys import ModelKeys

#: Each step catches what it turns into a 400 itself: nothing else may come out.
ALLOWED: tuple[type[BaseException], ...] = ()

KEYS = ModelKeys("fuzz")


def _query(rest: bytes) -> URL:
    text = rest.decode("latin-1").replace("#", "%23")
    return URL("http://scorer/recommendations/u1?" + text, encoded=True)


def one_input(data: bytes) -> None:
    if not data:
        return
    mode, rest = data[0] % 4, data[1:]
    if mode == 0:
        url = _query(rest)
        try:
            k = parse_k(url.query.get("k"), 10)
        except ValueError:
            pass
        else:
            assert 1 <= k <= MAX_K, k
        with contextlib.suppress(BadRule):
            parse_rules(url.query.getall("category", []), url.query.getall("exclude", []))
    elif mode == 1:
        parsed = parse_promote_body(rest)
        if parsed is not None:
            version, namespace = parsed
            assert type(version) is int and version >= 1, parsed
            assert namespace is None or (isinstance(namespace, str) and namespace), parsed
    elif mode == 2:
        try:
            since = parse_since(_query(rest).query.get("since"))
        except ValueError:
            pass
        else:
            assert since is None or since == since, since
    else:
        segment = rest.decode("latin-1").replace("/", "%2F").replace("?", "%3F")
        segment = segment.replace("#", "%23")
        user = URL.build(path="/recommendations/" + segment, encoded=True).path
        user = user.removeprefix("/recommendations/")
        KEYS.history(user).encode()
        KEYS.served(user).encode()
        arm_of(user, "experiment-id", 0.5)


def run(data: bytes) -> None:
    check(one_input, ALLOWED, data)


if __name__ == "__main__":
    main(one_input, ALLOWED)
