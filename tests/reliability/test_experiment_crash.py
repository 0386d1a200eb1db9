"""A scorer killed with SIGKILL during an experiment: arms stay put, nothing is lost."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from online_model.models.popularity import DecayedPopularity
from online_model.persist.snapshot import Snapshot, SnapshotMeta
from streams.experiment.assignment import arm_of
from streams.experiment.record import Experiment, new_id
from streams.experiment.store import ExperimentStore
from streams.io.topics import ensure_topics
from streams.services.processes import ChildProcess, wait_for
from streams.settings import Settings
from tests.support.fixtures import StoreFactory, on_every_engine
from tests.support.outages import Traffic, stopping
from tests.support.scorer import wait_assigned, wait_ready
from tests.support.topics import read_answers

#: Scorer behaviour: checked on each scorer engine.
pytestmark = on_every_engine


def popularity(pages: list[str]) -> Snapshot:
    model = DecayedPopularity()
    for page in pages:
        model.learn_one("someone", page)
    return Snapshot(SnapshotMeta("x", offsets={}), model)


def test_scorer_sigkill_during_an_experiment(
    settings: Settings, settings_env: dict[str, str], store_factory: StoreFactory, tmp_path: Path
) -> None:
    ensure_topics(settings)
    challenger = f"{settings.model_name}.chal"  # the test's own namespace
    experiment = Experiment(new_id(), settings.model_name, challenger, share=0.5)
    store_factory().publish(popularity([f"p{i}" for i in range(50)]))
    store_factory(challenger).publish(popularity([f"p{i}" for i in reversed(range(50))]))
    experiments = ExperimentStore(settings.redis_client(), settings.model_name)
    experiments.start(experiment)
    env = {**settings_env, "STREAMREC_BATCH_SIZE": "100"}
    traffic = Traffic(settings, rate=150.0, users=80)
    first = ChildProcess.streamrec(["scorer"], env, tmp_path / "scorer-1.log")
    with stopping(first):
        wait_assigned(settings, first)
        traffic.start()
        wait_for(lambda: experiments.counts(experiment.id)["challenger"].judged > 50, 30, "judged")
        first.popen.send_signal(signal.SIGKILL)
        assert first.popen.wait(5) == -signal.SIGKILL
        first.stop()
        judged_at_kill = experiments.counts(experiment.id)["challenger"].judged
    second = ChildProcess.streamrec(["scorer"], env, tmp_path / "scorer-2.log")
    with stopping(second):
        wait_ready(settings, second)
        time.sleep(4)
        traffic.stop()
        answers = read_answers(settings, set(traffic.event_ids), timeout=60)
        wait_for(
            lambda: experiments.counts(experiment.id)["challenger"].judged > judged_at_kill,
            20,
            "the restarted scorer to add judged views",
        )
        assert second.stop() == 0, second.output()[-3000:]
    assert not answers.lost, f"{len(answers.lost)} page views never answered"
    arms: dict[str, set[str]] = {}
    for rec in answers.recommendations:
        arms.setdefault(rec["user_id"], set()).add(rec["arm"])
    assert len(arms) == 80
    # Before and after the kill, every user got the one arm the hash gives them.
    assert all(a == {arm_of(user, experiment.id, 0.5)} for user, a in arms.items()), arms
    assert experiments.running() == experiment
