"""What /console/state gathers from a scorer's runtime, against a real Redis: the
running experiment's arms, served quality per version, and JSON a browser accepts."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from streams.experiment.record import Experiment, new_id
from streams.experiment.statistics import ArmCounts
from streams.experiment.store import ExperimentStore
from streams.scorer import console
from streams.scorer.core import ServedQuality
from streams.scorer.runtime import ScorerRuntime
from streams.settings import Settings
from tests.support.fixtures import StoreFactory
from tests.support.snapshots import popularity_on


async def _ready() -> tuple[dict[str, Any], int]:
    return {"status": "ok", "model_version": 1, "assigned_partitions": 1}, 200


def counts(judged: int, hits: int) -> ArmCounts:
    arm = ArmCounts()
    for i in range(judged):
        arm.add(1 if i < hits else None)
    return arm


def test_state_has_the_experiment_arms_and_served_quality_per_version(
    settings: Settings, store_factory: StoreFactory
) -> None:
    v1 = store_factory().publish(popularity_on("A"))
    cand = f"{settings.model_name}.cand"
    store_factory(cand).publish(popularity_on("B"))
    runtime = ScorerRuntime(settings)
    runtime.follow_experiment()
    runtime.load_model()
    empty = asyncio.run(console.state(runtime, settings, _ready))
    assert empty["experiment"] is None and empty["served_by_version"] == []
    assert [row["version"] for row in empty["versions"]] == [v1]
    assert empty["versions"][0]["served"] is None

    experiments = ExperimentStore(settings.redis_client(), settings.model_name)
    experiment = Experiment(new_id(), settings.model_name, cand, share=0.5)
    experiments.start(experiment)
    runtime.follow_experiment()  # joins; nothing judged yet: figures without a number
    quality = ServedQuality()
    for rank in (1, None, 2, None):
        quality.add(rank)
    runtime.metrics.add_quality(v1, quality)
    runtime.experiments.count({"champion": counts(10, 3), "challenger": counts(10, 6)})
    state = asyncio.run(console.state(runtime, settings, _ready))
    json.dumps(state, allow_nan=False)  # what JSON.parse takes: no NaN anywhere

    shown = state["experiment"]
    assert (shown["id"], shown["champion"], shown["challenger"]) == (
        experiment.id,
        settings.model_name,
        cand,
    )
    # The arms as of the last poll (the counts above are flushed on the next one).
    runtime.follow_experiment()
    arms = asyncio.run(console.state(runtime, settings, _ready))["experiment"]["figures"]
    assert (arms["champion"]["judged"], arms["challenger"]["judged"]) == (10, 10)
    assert arms["challenger"]["hit@10"] == 0.6
    row = state["versions"][0]
    assert row["served"] == {"judged": 4, "hit@10": 0.5, "mrr@10": 0.375}
    assert state["served_by_version"] == [row["served"] | {"version": v1}]
    assert state["served"]["judged"] == 4 and state["served"]["hit@10"] == 0.5

    # Once it ends, the versions that served in it carry its decision and figures, which
    # the page's versions table shows per version.
    experiments.finish(experiment, "stop", "challenger worse", arms, by="operator")
    runtime.follow_experiment()
    ended = asyncio.run(console.state(runtime, settings, _ready))
    json.dumps(ended, allow_nan=False)
    assert ended["experiment"] is None
    (outcome,) = ended["versions"][0]["experiments"]
    assert (outcome["experiment"], outcome["action"], outcome["arm"]) == (
        experiment.id,
        "stop",
        "champion",
    )
    assert outcome["figures"]["difference_hit@10"]["ci95"] == arms["difference_hit@10"]["ci95"]


def test_state_says_whether_the_served_namespace_has_a_live_trainer(settings: Settings) -> None:
    from streams.state.trainer_status import TrainerStatus

    runtime = ScorerRuntime(settings)
    assert asyncio.run(console.state(runtime, settings, _ready))["trainer"] is None
    record = {"model_name": settings.model_name, "stalled": True, "behind": 7}
    TrainerStatus(settings.redis_client(), settings.model_name).write(record, ttl_s=5)
    assert asyncio.run(console.state(runtime, settings, _ready))["trainer"] == record


def test_state_returns_the_samples_the_charts_draw(settings: Settings) -> None:
    """The samples kept so far (oldest first), or with ``since`` only the newer ones: what
    a page opened now draws at once, then what it adds on each poll."""
    from streams.scorer.console_history import History

    runtime = ScorerRuntime(settings)
    history = History(capacity=2)
    assert asyncio.run(console.state(runtime, settings, _ready, history=history))["history"] == []
    for events in (3, 5, 8):
        runtime.metrics.events_scored.inc(events)
        history.add(asyncio.run(console.take_sample(runtime, settings)))
    state = asyncio.run(console.state(runtime, settings, _ready, history=history))
    json.dumps(state, allow_nan=False)
    assert [s["events_out"] for s in state["history"]] == [8, 16]  # the first one is gone
    first, last = state["history"]
    assert first["t"] <= last["t"] <= state["time"]
    assert first["version"] == 0 and first["lag"] is None and "hit@10" in first
    assert state["history_interval_s"] == 5.0
    newer = asyncio.run(console.state(runtime, settings, _ready, history=history, since=first["t"]))
    assert newer["history"] == [last]
