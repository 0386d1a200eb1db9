"""The sizing table's arithmetic: measured per-unit costs → processes and nodes.

:func:`fit_linear` turns measurements at a few scales into per-unit costs (least
squares, one coefficient per unit plus a fixed part); :func:`plan` turns those costs and
the stated :class:`Assumptions` into how many scorers, trainers, Redis nodes and retrain
cores one deployment (users, pages, events/s) needs, and which part is closest to the
limit of one unit. Pure functions: ``bench.sizing`` measures, this computes, and
``tests/unit/test_sizing_table.py`` checks the arithmetic.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

GB = 1e9

#: The parts a deployment is made of, as :func:`plan` names them in ``ratios``.
PARTS = (
    "scorer CPU",
    "scorer memory",
    "trainer CPU",
    "trainer memory",
    "Redis memory",
    "Redis CPU",
)


@dataclass(frozen=True)
class Costs:
    """Per-unit costs, as ``bench.sizing`` measures them (bytes, CPU seconds)."""

    trainer_base_bytes: float
    trainer_bytes_per_user: float  # a user's buffer of recent pages in the trainer
    trainer_bytes_per_page: float  # a page with its row of successors
    scorer_base_bytes: float
    scorer_bytes_per_user: float  # user buffers travel in the snapshot a scorer loads
    scorer_bytes_per_page: float
    snapshot_bytes_per_user: float  # one full snapshot, as stored in Redis
    snapshot_bytes_per_page: float
    redis_bytes_per_user: float  # a user's history list and last served list, with TTLs
    scorer_cpu_s_per_event: float
    trainer_cpu_s_per_event: float
    redis_cpu_s_per_event: float  # the Redis server's CPU for the scorer's reads and writes
    retrain_core_s_per_million: float  # Spark: seconds x executor cores per 1M events


@dataclass(frozen=True)
class Assumptions:
    """What the table assumes beyond the measurements (stated in the report)."""

    cpu_target: float = 0.6  # a process or Redis node is planned at 60 % of one core
    process_memory_bytes: float = 25 * GB  # what one scorer or trainer may use
    redis_node_bytes: float = 25 * GB  # usable memory of one Redis node
    trainer_user_share: float = 1.0  # share of users whose buffer the trainer keeps
    full_snapshots_in_redis: float = 2.0  # full-snapshot equivalents kept (base + deltas)
    retrain_days: float = 7.0  # retrain reads this much of the log ...
    retrain_window_s: float = 3600.0  # ... and must finish within this
    trainers_max: int = 1  # trainer processes one model name can have today


def units(demand: float, capacity: float) -> int:
    """Units of ``capacity`` needed for ``demand``: at least 1; a demand within a
    millionth above a whole number of units does not take one more (float noise)."""
    if capacity <= 0:
        raise ValueError("capacity must be positive")
    return max(1, math.ceil(demand / capacity - 1e-6))


@dataclass(frozen=True)
class Row:
    """One deployment's plan (see :func:`plan`)."""

    users: int
    pages: int
    events_per_s: float
    scorers: int
    scorer_memory_gb: float
    trainers: int  # for CPU and memory together; today a model name has one
    trainer_memory_gb: float
    redis_nodes: int
    redis_memory_gb: float
    retrain_cores: int
    ratios: dict[str, float]  # demand / what one unit of the part can take
    first_limit: str  # the part with the highest ratio
    blocked: list[str]  # parts past one unit that cannot have more today (see plan)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def plan(costs: Costs, users: int, pages: int, events_per_s: float, a: Assumptions) -> Row:
    """How many of each part ``users`` / ``pages`` / ``events_per_s`` need.

    * scorers: enough cores at ``cpu_target`` for the events (each scorer holds the
      whole model, so its memory does not shrink with more of them);
    * trainers: for CPU as scorers; for memory, shards split the user buffers but each
      holds every page's row; a model whose pages alone exceed a process never fits
      (``trainers`` is then 0 and ``trainer memory`` the ratio that says so);
    * Redis: every user's history and served list plus the kept snapshots, over
      ``redis_node_bytes``; and its CPU for the scorer's round trips at ``cpu_target``;
    * retrain: executor cores so that ``retrain_days`` of the log takes
      ``retrain_window_s``;
    * ``first_limit``: the part with the highest demand over what one unit takes;
      ``blocked``: the parts past what can be deployed today (:func:`blocked`).
    """
    buffered = users * a.trainer_user_share
    cpu = a.cpu_target
    scorer_mem = (
        costs.scorer_base_bytes
        + costs.scorer_bytes_per_page * pages
        + costs.scorer_bytes_per_user * buffered
    )
    trainer_fixed = costs.trainer_base_bytes + costs.trainer_bytes_per_page * pages
    trainer_users = costs.trainer_bytes_per_user * buffered
    trainer_mem = trainer_fixed + trainer_users
    snapshot = costs.snapshot_bytes_per_page * pages + costs.snapshot_bytes_per_user * buffered
    redis_mem = costs.redis_bytes_per_user * users + a.full_snapshots_in_redis * snapshot
    ratios = {
        "scorer CPU": events_per_s * costs.scorer_cpu_s_per_event / cpu,
        "scorer memory": scorer_mem / a.process_memory_bytes,
        "trainer CPU": events_per_s * costs.trainer_cpu_s_per_event / cpu,
        "trainer memory": trainer_mem / a.process_memory_bytes,
        "Redis memory": redis_mem / a.redis_node_bytes,
        "Redis CPU": events_per_s * costs.redis_cpu_s_per_event / cpu,
    }
    room = a.process_memory_bytes - trainer_fixed
    trainers_mem = units(trainer_users, room) if room > 0 else 0
    trainers = 0 if trainers_mem == 0 else max(units(ratios["trainer CPU"], 1.0), trainers_mem)
    retrain_events = events_per_s * a.retrain_days * 86_400
    retrain_core_s = retrain_events / 1e6 * costs.retrain_core_s_per_million
    return Row(
        users=users,
        pages=pages,
        events_per_s=events_per_s,
        scorers=units(ratios["scorer CPU"], 1.0),
        scorer_memory_gb=scorer_mem / GB,
        trainers=trainers,
        trainer_memory_gb=trainer_mem / GB,
        redis_nodes=max(units(ratios["Redis memory"], 1.0), units(ratios["Redis CPU"], 1.0)),
        redis_memory_gb=redis_mem / GB,
        retrain_cores=units(retrain_core_s, a.retrain_window_s),
        ratios=ratios,
        first_limit=max(PARTS, key=ratios.__getitem__),
        blocked=blocked(ratios, trainers, a.trainers_max),
    )


def blocked(ratios: Mapping[str, float], trainers: int, trainers_max: int) -> list[str]:
    """The parts a deployment needs more of than it can have: trainers past
    ``trainers_max`` (or none that fits), and a model larger than a scorer may hold
    (every scorer holds all of it, so more scorers do not help)."""
    out = []
    if trainers == 0 or trainers > trainers_max:
        out += [p for p in ("trainer CPU", "trainer memory") if ratios[p] > 1]
        if not out:  # the shards' pages alone leave too little room: memory
            out = ["trainer memory"]
    if ratios["scorer memory"] > 1:
        out.append("scorer memory")
    return out


def table(
    costs: Costs,
    users: Sequence[int],
    pages: Sequence[int],
    rates: Sequence[float],
    a: Assumptions,
) -> list[Row]:
    """:func:`plan` for every combination, users outermost."""
    return [plan(costs, u, p, r, a) for u in users for p in pages for r in rates]


@dataclass(frozen=True)
class Fit:
    """``y ≈ intercept + Σ coef[x] · x`` by least squares, and how well it fits."""

    intercept: float
    coef: dict[str, float]
    r2: float
    n: int

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def fit_linear(points: Sequence[Mapping[str, float]], y: str, xs: Sequence[str]) -> Fit:
    """Least squares of ``points[i][y]`` on ``points[i][x]`` for each name in ``xs``,
    with an intercept. Needs more points than unknowns."""
    if len(points) < len(xs) + 1:
        raise ValueError(f"{len(points)} points cannot fit {len(xs)} slopes and an intercept")
    design = np.array([[1.0, *(float(p[x]) for x in xs)] for p in points])
    target = np.array([float(p[y]) for p in points])
    solution, *_ = np.linalg.lstsq(design, target, rcond=None)
    residual = target - design @ solution
    spread = float(((target - target.mean()) ** 2).sum())
    r2 = 1.0 - float((residual**2).sum()) / spread if spread > 0 else 1.0
    return Fit(
        intercept=float(solution[0]),
        coef={x: float(c) for x, c in zip(xs, solution[1:], strict=True)},
        r2=r2,
        n=len(points),
    )
