"""Per-arm served quality and the comparison of the two arms.

Each judged page view gives two observations per arm: ``hit`` (0/1, was the page in the
top k served just before) and ``rr`` (1/rank, 0 for a miss). :class:`ArmCounts` keeps
their sums and the sum of ``rr²``, which is all a variance needs, and adds up across
scorers (Redis ``HINCRBYFLOAT``).

Two intervals of the difference ``challenger - champion`` are given:

``ci95``
    The usual fixed-sample 95 % interval, ``d ± 1.96·se``: right for one look at a
    pre-set sample size, too narrow when looked at again and again.
``always_valid``
    A confidence *sequence* (Johari, Pekelis & Walsh, "Always valid inference", 2017:
    the normal-mixture mSPRT). With ``V = se²`` and a N(0, τ²) mixing prior over the
    difference, the mixture likelihood ratio against "difference = θ" is
    ``sqrt(V/(V+τ²)) · exp(τ²(d-θ)² / (2V(V+τ²)))``; by Ville's inequality it exceeds
    ``1/alpha`` at *any* time with probability at most alpha under θ, so the set of θ where it
    does not, ``d ± sqrt(2V(V+τ²)/τ² · (log(1/alpha) + ½·log((V+τ²)/V)))``, covers the true
    difference at every look at once with probability ≥ 1-alpha. It is wider than ``ci95``
    and that is the price of peeking. The validity rests on ``d`` being close to normal,
    which is why the gate also waits for a minimum number of judged views per arm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from online_model.quality import HitCounts

Z95 = 1.959963984540054


@dataclass
class ArmCounts(HitCounts):
    """:class:`HitCounts` plus the sum of squared reciprocal ranks (for MRR's variance)."""

    rr_squares: float = 0.0

    def add(self, rank: int | None) -> None:
        super().add(rank)
        if rank is not None:
            self.rr_squares += 1.0 / (rank * rank)

    def merge(self, other: ArmCounts) -> None:
        self += other
        self.rr_squares += other.rr_squares

    def variance(self, metric: str) -> float:
        """Per-view variance of ``hit`` or ``mrr`` (population form; 0 when unjudged)."""
        if not self.judged:
            return 0.0
        if metric == "hit":
            p = self.hit_rate
            return p * (1.0 - p)
        mean = self.mrr
        return max(0.0, self.rr_squares / self.judged - mean * mean)

    def mean(self, metric: str) -> float:
        return self.hit_rate if metric == "hit" else self.mrr

    def as_fields(self) -> dict[str, float]:
        return {
            "judged": self.judged,
            "hits": self.hits,
            "rr": self.reciprocal_rank,
            "rr2": self.rr_squares,
        }

    @classmethod
    def from_fields(cls, data: dict[str, float]) -> ArmCounts:
        return cls(
            judged=int(data.get("judged", 0)),
            hits=int(data.get("hits", 0)),
            reciprocal_rank=float(data.get("rr", 0.0)),
            rr_squares=float(data.get("rr2", 0.0)),
        )


@dataclass(frozen=True)
class Difference:
    """``challenger - champion`` of one metric, with both intervals."""

    metric: str
    estimate: float
    se: float
    ci95: tuple[float, float]
    always_valid: tuple[float, float]

    def as_dict(self) -> dict[str, object]:
        return {
            "metric": self.metric,
            "difference": self.estimate,
            "se": self.se,
            "ci95": list(self.ci95),
            "always_valid": list(self.always_valid),
        }


def always_valid_halfwidth(variance: float, alpha: float, tau: float) -> float:
    """Half-width of the normal-mixture confidence sequence at estimate variance ``V``."""
    if variance <= 0.0:
        return math.inf
    t2 = tau * tau
    spread = (variance + t2) / t2
    evidence = math.log(1.0 / alpha) + 0.5 * math.log((variance + t2) / variance)
    return math.sqrt(2.0 * variance * spread * evidence)


def difference(
    champion: ArmCounts, challenger: ArmCounts, metric: str, alpha: float, tau: float
) -> Difference:
    """Compare one metric (``hit`` or ``mrr``) of two independent arms."""
    if champion.judged < 2 or challenger.judged < 2:
        inf = (-math.inf, math.inf)
        return Difference(
            metric, challenger.mean(metric) - champion.mean(metric), math.inf, inf, inf
        )
    # The variance of each arm's mean, with a floor of one success-or-failure's worth so
    # that 0 % vs 0 % early on is not read as certainty.
    v = sum(
        max(arm.variance(metric), 1.0 / (arm.judged + 1)) / arm.judged
        for arm in (champion, challenger)
    )
    d = challenger.mean(metric) - champion.mean(metric)
    se = math.sqrt(v)
    half = always_valid_halfwidth(v, alpha, tau)
    return Difference(metric, d, se, (d - Z95 * se, d + Z95 * se), (d - half, d + half))
