"""An experiment's outcome, kept beside the model versions that took part in it.

When an experiment ends (the gate or ``experiment stop``), the version each arm served at
that moment gets the decision and the per-arm served quality it was taken on: judged
views, hits, hit@k and MRR@k per arm, and the differences with their 95 % and
always-valid intervals. So ``streamrec models list|show`` and ``GET /models`` show, for a
promoted version, the live evidence it was promoted on (and for a champion that was kept,
the evidence it was kept on).

A snapshot's own metadata is signed into its file and never rewritten; the outcome is
kept in the hash ``streamrec:<namespace>:experiment-results`` (field
``<version>:<experiment id>``, value JSON), written in the transaction that ends the
experiment and pruned with the version. Like the experiment log it records, it is not
signed: it is a report, nothing is loaded from it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from streams.experiment.assignment import CHALLENGER, CHAMPION
from streams.experiment.record import Experiment
from streams.io.json_values import finite
from streams.state.keys import ModelKeys


def field_name(version: int, experiment_id: str) -> str:
    """The hash field of one version's outcome of one experiment.

    >>> field_name(7, "a1b2c3d4")
    '7:a1b2c3d4'
    """
    return f"{version}:{experiment_id}"


def outcome(finished: Experiment, arm: str, versions: Mapping[str, int | None]) -> dict[str, Any]:
    """What version ``versions[arm]`` keeps of ``finished`` (which has its decision)."""
    decision = finished.decision or {}
    return finite(
        {
            "experiment": finished.id,
            "arm": arm,
            "action": decision.get("action"),
            "by": decision.get("by"),
            "reason": decision.get("reason"),
            "at": decision.get("at"),
            "started_at": finished.started_at,
            "share": finished.share,
            "shadow": finished.shadow,
            "champion": {"namespace": finished.champion, "version": versions.get(CHAMPION)},
            "challenger": {"namespace": finished.challenger, "version": versions.get(CHALLENGER)},
            "figures": decision.get("figures") or {},
        }
    )


def namespaces(experiment: Experiment) -> dict[str, str]:
    """arm -> the namespace whose snapshots it served."""
    return {CHAMPION: experiment.champion, CHALLENGER: experiment.challenger}


def record(
    pipe: Any, keys: ModelKeys, finished: Experiment, versions: Mapping[str, int | None]
) -> None:
    """Queue, on a MULTI ``pipe``, the outcome under each arm's version (none: skipped);
    ``keys`` gives the layout (any namespace's keys)."""
    for arm, namespace in namespaces(finished).items():
        version = versions.get(arm)
        if version is None:
            continue
        pipe.hset(
            keys.of(namespace).experiment_results,
            field_name(version, finished.id),
            json.dumps(outcome(finished, arm, versions), sort_keys=True, allow_nan=False),
        )


def by_version(client: Any, keys: ModelKeys) -> dict[int, list[dict[str, Any]]]:
    """Every kept outcome of a namespace, per version, oldest decision first; entries
    that do not parse are left out (the hash is a report, not an input)."""
    out: dict[int, list[dict[str, Any]]] = {}
    for name, raw in client.hgetall(keys.experiment_results).items():
        version, _, _ = (name.decode() if isinstance(name, bytes) else name).partition(":")
        try:
            entry = json.loads(raw)
            out.setdefault(int(version), []).append(entry)
        except (ValueError, TypeError):
            continue
    for entries in out.values():
        entries.sort(key=lambda e: e.get("at") or 0.0)
    return out


def summary(entry: Mapping[str, Any]) -> str:
    """One short line for ``models list``: what the experiment decided, this version's
    arm, and hit@k of both arms.

    >>> summary({"experiment": "e1", "arm": "challenger", "action": "promote",
    ...          "figures": {"champion": {"judged": 9, "hit@10": 0.25},
    ...                      "challenger": {"judged": 8, "hit@10": 0.5}}})
    'exp e1 promote as challenger: hit@10 0.5000 (n=8) vs champion 0.2500 (n=9)'
    """
    arm = str(entry.get("arm"))
    other = CHAMPION if arm == CHALLENGER else CHALLENGER
    figures = entry.get("figures") or {}
    mine, theirs = figures.get(arm) or {}, figures.get(other) or {}
    metric = next((name for name in mine if name.startswith("hit@")), "hit@k")

    def rate(arm_figures: Mapping[str, Any]) -> str:
        value = arm_figures.get(metric)
        shown = "-" if value is None else f"{value:.4f}"
        return f"{shown} (n={arm_figures.get('judged', 0)})"

    return (
        f"exp {entry.get('experiment')} {entry.get('action')} as {arm}: "
        f"{metric} {rate(mine)} vs {other} {rate(theirs)}"
    )
