"""The trainer is SIGKILLed twice while page views flow (the single-kill exactly-once case
is tests/integration/test_trainer.py). What this adds: ``current``, sampled all along,
never goes backwards, and at the end the model learned exactly what was produced."""

from __future__ import annotations

import itertools
import signal
import threading
import time
from pathlib import Path

from streams.io.topics import ensure_topics
from streams.services.processes import ChildProcess, wait_for
from streams.settings import Settings
from streams.state.snapshot_store import SnapshotStore
from tests.support.fixtures import TEST_SNAPSHOT_KEY
from tests.support.outages import Traffic, kill_all, summary


def test_current_only_moves_forward_across_trainer_kills_and_nothing_is_relearned(
    settings: Settings, settings_env: dict[str, str], tmp_path: Path
) -> None:
    ensure_topics(settings, [settings.topic_page_views])
    env = {
        **settings_env,
        "STREAMREC_SNAPSHOT_INTERVAL": "300ms",
        "STREAMREC_MODEL": "covisit",
        "STREAMREC_TRAINER_LEASE_TTL": "2s",
    }
    store = SnapshotStore(settings.redis_client(), settings.model_name, TEST_SNAPSHOT_KEY.encode())
    samples: list[int] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            version = store.current_version()
            if version is not None:
                samples.append(version)
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    traffic = Traffic(settings, rate=150.0).start()
    procs: list[ChildProcess] = []
    kills = 0
    try:
        for run in range(3):
            proc = ChildProcess.streamrec(
                ["--log-level", "info", "trainer"], env, tmp_path / f"trainer-{run}.log"
            )
            procs.append(proc)
            seen = len(samples)
            wait_for(
                lambda n=seen, p=proc: len(set(samples[n:])) >= 2 or not p.alive(),
                30,
                f"trainer run {run} publishing",
            )
            assert proc.alive(), proc.output()[-3000:]
            if run < 2:
                time.sleep(0.15 * (run + 1))  # somewhere between two snapshots
                proc.popen.send_signal(signal.SIGKILL)
                assert proc.popen.wait(5) == -signal.SIGKILL
                proc.stop()
                kills += 1
        produced = traffic.stop()
        wait_for(
            lambda: store.read_meta(store.current_version()).events_seen == produced,
            30,
            "the last trainer to catch up",
        )
        last = procs[-1]
        started = time.monotonic()
        code = last.stop(signal.SIGTERM)
        took = time.monotonic() - started
    finally:
        done.set()
        kill_all(procs)
    sampler.join(2)
    final = store.load(store.current_version())  # type: ignore[arg-type]
    backwards = sum(1 for a, b in itertools.pairwise(samples) if b < a)
    summary(
        "trainer_kills",
        events_in=produced,
        kills=kills,
        versions_seen=len(set(samples)),
        went_backwards=backwards,
        learned=final.model.n_events_learned,
        events_seen=final.meta.events_seen,
        sigterm_exit_code=code,
        sigterm_seconds=round(took, 2),
    )
    assert code == 0 and took < 10
    assert backwards == 0, samples
    assert final.model.n_events_learned == final.meta.events_seen == produced
    assert all("trainer resumed" in p.output() for p in procs[1:])
