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
    "model's snapshots (one Redis node)",
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
    trainers_max: int = 256  # trainer shards one model name may have (`--shard i/N`)
    #: A merging shard holds every partition's state and the merge: their arrays times
    #: this (numpy and Python copies around them; the sharded check measured about 2).
    merger_factor: float = 2.0
    #: CPU of shards over a plain trainer's on the same events (their own start, consumers
    #: and merging); shards are counted for the trainer's CPU times this.
    shard_cpu_factor: float = 1.0


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
    trainers: int  # 1: one plain trainer; N > 1: N shards; 0: no layout fits
    trainer_memory_gb: float  # the largest trainer process of that layout
    partitions: int  # of page-views: at least one per scorer and per trainer shard
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
    * trainers: one plain trainer when it has the CPU and memory (:func:`trainer_layout`),
      else the fewest shards that do; the scorers' model carries user buffers only from
      a plain trainer (a merge of shards holds none);
    * Redis: every user's history and served list plus the kept snapshots (the model's,
      and with shards every partition's), over ``redis_node_bytes``; and its CPU for
      the scorers' round trips at ``cpu_target``;
    * retrain: executor cores so that ``retrain_days`` of the log takes
      ``retrain_window_s``;
    * ``first_limit``: the part with the highest demand over what one unit takes;
      ``blocked``: the parts past what can be deployed (:func:`blocked`).
    """
    buffered = users * a.trainer_user_share
    cpu = a.cpu_target
    scorer_cpu = events_per_s * costs.scorer_cpu_s_per_event / cpu
    scorers = units(scorer_cpu, 1.0)
    trainer_cpu = events_per_s * costs.trainer_cpu_s_per_event / cpu
    trainers, trainer_mem, partitions = trainer_layout(
        costs, buffered, pages, trainer_cpu, scorers, a
    )
    sharded = trainers > 1
    page_arrays = costs.snapshot_bytes_per_page * pages
    user_arrays = costs.snapshot_bytes_per_user * buffered
    scorer_mem = costs.scorer_base_bytes + costs.scorer_bytes_per_page * pages
    if not sharded:
        scorer_mem += costs.scorer_bytes_per_user * buffered
    # Kept snapshots: the model's (with the buffers of a plain trainer), and with shards
    # each partition's (its own rows and its users' buffers).
    snapshots = page_arrays + user_arrays
    if sharded:
        snapshots = (partitions + 1) * page_arrays + user_arrays
    redis_mem = costs.redis_bytes_per_user * users + a.full_snapshots_in_redis * snapshots
    ratios = {
        "scorer CPU": scorer_cpu,
        "scorer memory": scorer_mem / a.process_memory_bytes,
        "trainer CPU": trainer_cpu,
        "trainer memory": trainer_bytes(costs, buffered, pages, 1, 1, a) / a.process_memory_bytes,
        "Redis memory": redis_mem / a.redis_node_bytes,
        "Redis CPU": events_per_s * costs.redis_cpu_s_per_event / cpu,
        # A model's keys share a hash slot on a cluster, and so do its shards' partitions
        # (streams.state.keys.family): all its snapshots are on one node.
        "model's snapshots (one Redis node)": a.full_snapshots_in_redis
        * snapshots
        / a.redis_node_bytes,
    }
    retrain_events = events_per_s * a.retrain_days * 86_400
    retrain_core_s = retrain_events / 1e6 * costs.retrain_core_s_per_million
    return Row(
        users=users,
        pages=pages,
        events_per_s=events_per_s,
        scorers=scorers,
        scorer_memory_gb=scorer_mem / GB,
        trainers=trainers,
        trainer_memory_gb=trainer_mem / GB,
        partitions=partitions,
        redis_nodes=max(units(ratios["Redis memory"], 1.0), units(ratios["Redis CPU"], 1.0)),
        redis_memory_gb=redis_mem / GB,
        retrain_cores=units(retrain_core_s, a.retrain_window_s),
        ratios=ratios,
        first_limit=max(PARTS, key=ratios.__getitem__),
        blocked=blocked(ratios, trainers),
    )


def trainer_bytes(
    costs: Costs, users: float, pages: int, shards: int, partitions: int, a: Assumptions
) -> float:
    """The largest trainer process when ``shards`` share ``partitions``: one plain
    trainer (``shards == 1``) holds one model; a shard holds a model per partition it
    learns (each with a row per page), ``1 / shards`` of the user buffers and the newest
    merge (its arrays), and the merging shard also every partition's state and the
    merge (``merger_factor`` times their arrays)."""
    if shards == 1:
        tables, merger = 1, 0.0
    else:
        tables = math.ceil(partitions / shards)
        merge = costs.snapshot_bytes_per_page * pages
        merger = merge + a.merger_factor * merge * (partitions + 1)
    return (
        costs.trainer_base_bytes
        + costs.trainer_bytes_per_page * pages * tables
        + costs.trainer_bytes_per_user * users / shards
        + merger
    )


def trainer_layout(
    costs: Costs, users: float, pages: int, cpu: float, scorers: int, a: Assumptions
) -> tuple[int, float, int]:
    """(trainer processes, bytes of the largest, partitions): one plain trainer if one
    core (``cpu``: the trainer's demand in planned cores) and one process' memory take
    it, else the fewest shards (up to ``trainers_max``, each on its own partitions, their
    CPU ``shard_cpu_factor`` times a plain trainer's) that do; (0, a plain trainer's
    bytes, ``scorers``) when none does."""
    single = trainer_bytes(costs, users, pages, 1, 1, a)
    if units(cpu, 1.0) <= 1 and single <= a.process_memory_bytes:
        return 1, single, scorers
    for shards in range(max(2, units(cpu * a.shard_cpu_factor, 1.0)), a.trainers_max + 1):
        partitions = max(scorers, shards)
        size = trainer_bytes(costs, users, pages, shards, partitions, a)
        if size <= a.process_memory_bytes:
            return shards, size, partitions
    return 0, single, scorers


def blocked(ratios: Mapping[str, float], trainers: int) -> list[str]:
    """The parts no deployment of this size has enough of: trainers when no layout
    fits (:func:`trainer_layout`), a model larger than a scorer may hold (every scorer
    holds all of it, so more scorers do not help), and snapshots larger than a Redis
    node (a model's keys share one hash slot on a cluster)."""
    out = []
    if trainers == 0:
        too_big = ratios["trainer memory"] > 1
        out.append("trainer memory" if too_big else "trainer CPU (no shard layout fits)")
    for part in ("scorer memory", "model's snapshots (one Redis node)"):
        if ratios[part] > 1:
            out.append(part)
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
