"""The gate of ``experiment start --auto``: promote, stop, or keep watching.

It may be asked after every batch of judged views, for as long as the experiment runs,
because it decides on the always-valid confidence sequence of the hit@k difference
(:func:`~streams.experiment.statistics.difference`): the chance that it ever promotes a
challenger that is not better, or ever stops one that is not worse, is at most ``alpha``
however often it looks. It decides nothing before each arm has ``min_judged`` judged
views (the normal approximation needs them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streams.experiment.assignment import CHALLENGER, CHAMPION
from streams.experiment.record import Experiment
from streams.experiment.statistics import ArmCounts, Difference, difference

PROMOTE = "promote"
STOP = "stop"

#: The metric the gate decides on; MRR is reported beside it.
GATE_METRIC = "hit"


@dataclass(frozen=True)
class Verdict:
    """What the gate concluded (``action`` None: keep going) and the figures behind it."""

    action: str | None
    reason: str
    figures: dict[str, Any]


def figures(experiment: Experiment, arms: dict[str, ArmCounts], k: int) -> dict[str, Any]:
    """Per-arm counts and rates, and both differences with their intervals."""
    champion = arms.get(CHAMPION, ArmCounts())
    challenger = arms.get(CHALLENGER, ArmCounts())
    out: dict[str, Any] = {
        arm: {
            "judged": counts.judged,
            f"hit@{k}": counts.hit_rate,
            f"mrr@{k}": counts.mrr,
        }
        for arm, counts in ((CHAMPION, champion), (CHALLENGER, challenger))
    }
    for metric, name in (("hit", f"hit@{k}"), ("mrr", f"mrr@{k}")):
        diff = difference(champion, challenger, metric, experiment.alpha, experiment.tau)
        out[f"difference_{name}"] = diff.as_dict()
    return out


def judge(experiment: Experiment, arms: dict[str, ArmCounts], k: int) -> Verdict:
    """The gate's verdict on the counts so far."""
    champion = arms.get(CHAMPION, ArmCounts())
    challenger = arms.get(CHALLENGER, ArmCounts())
    shown = figures(experiment, arms, k)
    fewest = min(champion.judged, challenger.judged)
    if fewest < experiment.min_judged:
        return Verdict(None, f"waiting: {fewest} of {experiment.min_judged} judged views", shown)
    diff: Difference = difference(
        champion, challenger, GATE_METRIC, experiment.alpha, experiment.tau
    )
    low, high = diff.always_valid
    interval = f"{100 * (1 - experiment.alpha):g} % always-valid CI [{low:+.4f}, {high:+.4f}]"
    if low > 0.0:
        reason = f"challenger hit@{k} better by {diff.estimate:+.4f} ({interval})"
        return Verdict(PROMOTE, reason, shown)
    if high < 0.0:
        reason = f"challenger hit@{k} worse by {diff.estimate:+.4f} ({interval})"
        return Verdict(STOP, reason, shown)
    return Verdict(None, f"undecided: always-valid CI [{low:+.4f}, {high:+.4f}] holds 0", shown)
