"""The Redis side of experiments: the record, the summed per-arm counts, the log.

Keys (:class:`~streams.state.keys.ModelKeys` of the champion namespace, the one
``STREAMREC_MODEL_NAME`` names): ``experiment`` (the running record, JSON),
``experiment:<id>:counts`` (hash ``<arm>:<field>``, added to by every scorer),
``experiments`` (finished records, newest first), ``serving`` (the namespace served
after a promotion) and ``serving-log`` (:mod:`streams.state.serving`). Ending an
experiment is one transaction that only applies if the record is still the one the
caller judged, so two scorers' gates, or a gate and an operator, cannot both decide.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

import redis

from online_model.errors import ConfigurationError
from online_model.persist.snapshot import Snapshot
from streams.errors import StoreUnavailable
from streams.experiment import results
from streams.experiment.assignment import ARMS
from streams.experiment.record import Experiment
from streams.experiment.statistics import ArmCounts
from streams.state.connection import is_cluster, redis_errors
from streams.state.keys import ModelKeys
from streams.state.serving import Placement, change_entry, queue_change
from streams.state.snapshot_store import SnapshotStore

log = logging.getLogger(__name__)

#: Finished experiments kept in the log.
LOG_LENGTH = 100
#: Tries to end an experiment while its arms' versions keep moving (each try is one
#: optimistic transaction; trainers publish every half second or so).
FINISH_ATTEMPTS = 20
#: Seconds the counts of a finished experiment are kept (its record keeps the figures).
COUNTS_TTL_S = 30 * 24 * 3600


class ExperimentStore:
    """Experiments of one champion namespace."""

    def __init__(self, client: Any, namespace: str) -> None:
        self.redis = client
        self.namespace = namespace
        self.keys = ModelKeys(namespace, is_cluster(client))

    # -- what scorers read every poll ---------------------------------------------------
    @redis_errors
    def read(self) -> tuple[str, Experiment | None]:
        """(namespace to serve as champion, running experiment or None), one round trip."""
        serving, raw = self.redis.mget(self.keys.experiment_read_group())
        namespace = serving.decode() if serving else self.namespace
        return namespace, Experiment.from_json(raw) if raw else None

    def serving(self) -> str:
        return self.read()[0]

    def running(self) -> Experiment | None:
        return self.read()[1]

    # -- starting and ending ------------------------------------------------------------
    @redis_errors
    def start(self, experiment: Experiment) -> None:
        """Store ``experiment`` as the running one; refuse if one runs already."""
        if not self.redis.set(self.keys.experiment, experiment.to_json(), nx=True):
            other = self.running()
            raise ConfigurationError(
                f"experiment {other.id if other else '?'} is already running on "
                f"{self.namespace}: stop it first (streamrec experiment stop)"
            )
        log.info(
            "experiment started id=%s champion=%s challenger=%s share=%s shadow=%s auto=%s",
            experiment.id,
            experiment.champion,
            experiment.challenger,
            experiment.share,
            experiment.shadow,
            experiment.auto,
        )

    @redis_errors
    def finish(
        self, experiment: Experiment, action: str, reason: str, figures: dict[str, Any], by: str
    ) -> Experiment | None:
        """End ``experiment`` (``action`` ``promote`` or ``stop``) if it still runs.

        Promotion points ``serving`` at the challenger in the same transaction, so every
        scorer's next poll sees the experiment gone and the challenger serving together.
        The same transaction records the decision and its figures beside the version each
        arm serves (:mod:`streams.experiment.results`); a version that moves meanwhile
        makes it start again.
        Returns the finished record, or None when it was not running any more.
        """
        for _ in range(FINISH_ATTEMPTS):
            try:
                finished = self._finish_once(experiment, action, reason, figures, by)
            except redis.WatchError:
                continue  # the record or a served version moved: look again
            if finished is None:
                return None
            break
        else:
            raise StoreUnavailable(f"experiment {experiment.id}: versions kept moving; try again")
        log.warning(
            "experiment finished id=%s action=%s by=%s reason=%s",
            experiment.id,
            action,
            by,
            reason,
        )
        return finished

    def _finish_once(
        self, experiment: Experiment, action: str, reason: str, figures: dict[str, Any], by: str
    ) -> Experiment | None:
        arms = results.namespaces(experiment)
        currents = [self.keys.of(namespace).current for namespace in arms.values()]
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.watch(self.keys.experiment, *currents)
            raw = pipe.get(self.keys.experiment)
            if not raw or Experiment.from_json(raw).id != experiment.id:
                return None
            # The version each arm serves now: the decision is recorded beside them.
            # One GET per arm: a cluster client's pipeline refuses MGET.
            versions = {
                arm: int(v) if v is not None else None
                for arm, v in zip(arms, [pipe.get(key) for key in currents], strict=True)
            }
            champion_keys = self.keys.of(experiment.champion)
            champion_pinned = bool(pipe.exists(champion_keys.pinned))
            finished = dataclasses.replace(
                experiment,
                state="promoted" if action == "promote" else "stopped",
                decision={
                    "action": action,
                    "by": by,
                    "reason": reason,
                    "at": time.time(),
                    "figures": figures,
                    "versions": versions,
                },
            )
            pipe.multi()
            pipe.delete(self.keys.experiment)
            pipe.lpush(self.keys.experiment_log, finished.to_json())
            pipe.ltrim(self.keys.experiment_log, 0, LOG_LENGTH - 1)
            pipe.expire(self.keys.experiment_counts(experiment.id), COUNTS_TTL_S)
            if action == "promote":
                pipe.set(self.keys.serving, experiment.challenger)
                # What the champion served stays kept (its current is never pruned), so a
                # rollback can serve exactly that again (streams.state.serving).
                if versions["champion"] is not None:
                    pipe.set(champion_keys.pinned, "1")
                entry = change_entry(
                    "experiment",
                    by,
                    Placement(experiment.challenger, versions["challenger"], False),
                    Placement(experiment.champion, versions["champion"], champion_pinned),
                    experiment=experiment.id,
                )
                queue_change(pipe, self.keys, entry)
            results.record(pipe, self.keys, finished, versions)
            pipe.execute()
        return finished

    @redis_errors
    def history(self, limit: int = 10) -> list[Experiment]:
        return [
            Experiment.from_json(raw)
            for raw in self.redis.lrange(self.keys.experiment_log, 0, limit - 1)
        ]

    # -- per-arm counts -----------------------------------------------------------------
    @redis_errors
    def add_counts(self, experiment_id: str, arms: dict[str, ArmCounts]) -> None:
        """Add one scorer's new judged views to the experiment's totals."""
        key = self.keys.experiment_counts(experiment_id)
        pipe = self.redis.pipeline(transaction=True)
        for arm, counts in arms.items():
            if counts.judged:
                for name, value in counts.as_fields().items():
                    pipe.hincrbyfloat(key, f"{arm}:{name}", value)
        pipe.execute()

    @redis_errors
    def counts(self, experiment_id: str) -> dict[str, ArmCounts]:
        raw = self.redis.hgetall(self.keys.experiment_counts(experiment_id))
        fields: dict[str, dict[str, float]] = {arm: {} for arm in ARMS}
        for name, value in raw.items():
            arm, _, field = name.decode().partition(":")
            fields.setdefault(arm, {})[field] = float(value)
        return {arm: ArmCounts.from_fields(data) for arm, data in fields.items()}


def copy_as_challenger(source: SnapshotStore, version: int, target: SnapshotStore) -> int:
    """Publish verified ``version`` of ``source`` into ``target`` as a trainer snapshot.

    The challenger's trainer then resumes from it (model and offsets) and keeps learning,
    so a candidate built by ``replay`` or ``retrain`` can be tried on live traffic.
    """
    snap = source.load(version)
    meta = dataclasses.replace(
        snap.meta,
        origin="trainer",
        extra={**snap.meta.extra, "copied_from": {"model": source.model_name, "version": version}},
    )
    return target.publish(Snapshot(meta, snap.model, snap.trainer_state))
