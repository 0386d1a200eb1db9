"""A small generated log and the lists a model serves on it, for the hybrid's tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from online_model.data.generate import generate

Event = tuple[str, str, int]


def make_events(n: int = 3_000, seed: int = 5) -> list[Event]:
    """``n`` generated page views (80 users, 60 pages) as (user, page, ts)."""
    rows = generate(n_users=80, n_pages=60, n_events=n, seed=seed).rows()
    return [(str(u), str(p), int(t)) for u, p, t, _ in rows]


def probes(model: Any, log: Sequence[Event]) -> list[list[tuple[Any, float]]]:
    """The top 10 ``model`` serves for each of the last 60 views of ``log``."""
    out = []
    for user, page, _ in log[-60:]:
        history = [p for u, p, _ in log[-400:] if u == user][-8:]
        out.append(model.recommend(user, k=10, history=history, exclude={page}))
    return out
