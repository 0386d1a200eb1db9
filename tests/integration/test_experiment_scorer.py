"""A scorer's runtime following promotions, against a real Redis (no broker needed)."""

from __future__ import annotations

import time

from online_model.models.popularity import DecayedPopularity
from online_model.persist.snapshot import Snapshot, SnapshotMeta
from streams.experiment.record import Experiment, new_id
from streams.experiment.store import ExperimentStore
from streams.scorer.runtime import ScorerRuntime
from streams.settings import Settings
from tests.support.fixtures import StoreFactory


def knowing(prefix: str) -> Snapshot:
    model = DecayedPopularity()
    for page in range(5):
        model.learn_one("someone", f"{prefix}{page}")
    return Snapshot(SnapshotMeta("x", created_at=time.time()), model)


def served_pages(runtime: ScorerRuntime) -> set[str]:
    return {page for page, _ in runtime.holder.current.model.recommend("u", 5, [], set())}


def test_a_scorer_that_never_held_the_challenger_serves_it_once_promoted(
    settings: Settings, store_factory: StoreFactory
) -> None:
    # Both namespaces are at version 1: versions of two namespaces say nothing about
    # which model is held, so the promoted one must be loaded, not compared.
    cand = f"{settings.model_name}.cand"  # the test's own namespace
    assert store_factory().publish(knowing("A")) == 1
    assert store_factory(cand).publish(knowing("B")) == 1
    runtime = ScorerRuntime(settings)
    runtime.follow_experiment()
    runtime.load_model()
    assert served_pages(runtime) == {f"A{i}" for i in range(5)}

    experiments = ExperimentStore(settings.redis_client(), settings.model_name)
    experiment = Experiment(new_id(), settings.model_name, cand, share=0.5)
    experiments.start(experiment)
    # Promoted before this scorer's next poll: it never held the challenger.
    assert experiments.finish(experiment, "promote", "test", {}, by="operator") is not None
    runtime.follow_experiment()
    runtime.load_model()
    assert served_pages(runtime) == {f"B{i}" for i in range(5)}
    assert (runtime.core.model_name, runtime.store.model_name) == (cand, cand)
    assert runtime.core.routing is None

    # The promoted namespace moves on; the scorer follows it.
    assert store_factory(cand).publish(knowing("C")) == 2
    runtime.follow_experiment()
    assert runtime.load_model()
    assert served_pages(runtime) == {f"C{i}" for i in range(5)}
