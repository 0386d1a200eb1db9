"""Ranking quality: the one hit@k / MRR@k accumulator.

A *judgement* asks whether the page a user viewed next was in the list recommended (or
served) before it, and at which rank. Offline evaluation, replay, the trainer's rolling
estimate and the scorer's served quality all count judgements the same way here.

>>> q = HitCounts()
>>> q.add(rank_of("b", ["a", "b", "c"]))
>>> q.add(rank_of("z", ["a", "b", "c"]))
>>> q.judged, q.hits, q.hit_rate, q.mrr
(2, 1, 0.5, 0.25)
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Self


def rank_of(page: Hashable, ranked: Iterable[Hashable]) -> int | None:
    """1-based position of ``page`` in ``ranked``, or None when it is absent."""
    if isinstance(ranked, list):  # the scorer's served lists: list.index runs in C
        try:
            return ranked.index(page) + 1
        except ValueError:
            return None
    for position, item in enumerate(ranked, 1):
        if item == page:
            return position
    return None


@dataclass
class HitCounts:
    """Judged lists, hits and the sum of reciprocal ranks (0 for a miss)."""

    judged: int = 0
    hits: int = 0
    reciprocal_rank: float = 0.0

    def add(self, rank: int | None) -> None:
        """Count one judged list where the page stood at ``rank`` (None: a miss)."""
        self.judged += 1
        if rank is not None:
            self.hits += 1
            self.reciprocal_rank += 1.0 / rank

    def __iadd__(self, other: HitCounts) -> Self:
        self.judged += other.judged
        self.hits += other.hits
        self.reciprocal_rank += other.reciprocal_rank
        return self

    def __isub__(self, other: HitCounts) -> Self:
        self.judged -= other.judged
        self.hits -= other.hits
        self.reciprocal_rank -= other.reciprocal_rank
        return self

    @property
    def hit_rate(self) -> float:
        return self.hits / self.judged if self.judged else 0.0

    @property
    def mrr(self) -> float:
        return self.reciprocal_rank / self.judged if self.judged else 0.0

    def report(self, k: int) -> dict[str, float]:
        """``{"hit@k": ..., "mrr@k": ...}``"""
        return {f"hit@{k}": self.hit_rate, f"mrr@{k}": self.mrr}
