"""An experiment started the way an operator starts one and judged as a clear win for the
challenger: the shared first half of the experiment tests under restricted Redis users
(tests/reliability/test_redis_acl.py, test_redis_cluster.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streams.experiment.assignment import CHALLENGER, CHAMPION
from streams.experiment.record import Experiment, new_id
from streams.experiment.statistics import ArmCounts
from streams.experiment.store import ExperimentStore, copy_as_challenger
from streams.scorer.experiment_routing import ExperimentFollower
from streams.state.snapshot_store import SnapshotStore
from tests.support.snapshots import popularity_snapshot


@dataclass
class Started:
    experiment: Experiment
    champion_version: int
    challenger_version: int


def start_auto_experiment(operator: Any, model: str, key: bytes) -> Started:
    """As the operator: publish a champion, copy it as the challenger, start the gate."""
    eid = new_id()
    experiment = Experiment(
        id=eid, champion=model, challenger=f"{model}.x{eid}", share=0.5, auto=True, min_judged=50
    )
    champion_version = SnapshotStore(operator, model, key).publish(popularity_snapshot())
    challenger_version = copy_as_challenger(
        SnapshotStore(operator, model, key),
        champion_version,
        SnapshotStore(operator, experiment.challenger, key),
    )
    ExperimentStore(operator, model).start(experiment)
    return Started(experiment, champion_version, challenger_version)


def follower_of(scorer: Any, model: str, key: bytes) -> ExperimentFollower:
    """A scorer's experiment follower, reading through ``scorer``'s client."""
    return ExperimentFollower(
        ExperimentStore(scorer, model), lambda ns: SnapshotStore(scorer, ns, key), k=10
    )


def count_a_clear_win(follower: ExperimentFollower) -> None:
    """Judged views where the challenger hits five times as often as the champion."""
    follower.count(
        {
            CHAMPION: ArmCounts(judged=400, hits=40, reciprocal_rank=20.0, rr_squares=10.0),
            CHALLENGER: ArmCounts(judged=400, hits=200, reciprocal_rank=100.0, rr_squares=50.0),
        }
    )
