"""The hybrid wired end to end: a running trainer learns the online layer, ``streamrec
retrain --model hybrid`` (real local[2] Spark) publishes a batch layer, the trainer swaps
it in without a restart, keeps learning, and scorers load a hybrid of both."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from online_model.data.generate import generate
from online_model.errors import SnapshotError
from online_model.models.covisit.batch import OrderedEvents
from online_model.models.hybrid import Hybrid
from online_model.models.itemitem import fit_item_item
from online_model.persist.snapshot import SnapshotMeta
from streams.cli import main
from streams.io.producer import page_view
from streams.io.topics import ensure_topics
from streams.retrain import job
from streams.scorer.model_holder import ModelHolder
from streams.services.processes import wait_for
from streams.settings import Settings
from streams.state.snapshot_store import SnapshotStore
from streams.trainer.loop import Trainer
from streams.trainer.run import run_trainer
from streams.wiring import batch_layer_store, snapshot_store
from tests.support.topics import produce_page_views


class SharedSpark:
    """The session's SparkContext for a command that stops its own when done."""

    def __init__(self, sc: Any) -> None:
        self._sc = sc

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sc, name)

    def stop(self) -> None:
        pass  # the session fixture stops it


@pytest.mark.spark
def test_the_batch_layer_fit_on_spark_equals_the_fit_of_one_process(spark: Any) -> None:
    rows = generate(n_users=90, n_pages=70, n_events=4_000, seed=9).rows()
    events = [(u, p, t) for u, p, t, _ in rows]
    params = {"history_length": 30, "max_pages": 40, "l2": 20.0, "n_neighbours": 10}
    position = {"views": {"0": 4_000}}
    got = job.item_item_layer(spark, OrderedEvents.from_rows(events), params, position)
    reference = fit_item_item(events, position=position, **params)
    assert got.pages == reference.pages and got.position == position
    assert np.array_equal(got.neighbour, reference.neighbour)
    assert np.array_equal(got.weight, reference.weight)


def test_the_batch_layer_store_keeps_the_newest_and_refuses_what_does_not_verify(
    settings: Settings,
) -> None:
    events = [(f"u{i % 7}", f"p{i % 11}", i) for i in range(300)]
    store = batch_layer_store(settings)
    assert store.newest_version() is None and store.load_newest() is None
    for n in (100, 200, 300):
        offsets = {"views": {0: n}}
        layer = fit_item_item(events[:n], position={"views": {"0": n}})
        store.publish(layer, offsets, extra={"n": n})
    for n in (250, 300):  # two more: the oldest are pruned, the newest is named
        store.publish(fit_item_item(events[:n], position={"views": {"0": n}}), {"views": {0: n}})
    assert store.newest_version() == 5
    newest = store.load_newest()
    assert newest is not None and newest.layer.n_events == 300 and newest.meta.version == 5
    assert store.load(3).meta.extra == {"n": 300}
    assert store.redis.exists(store.keys.batch_layer(2)) == 0  # the last 3 are kept
    with pytest.raises(SnapshotError, match="no batch layer"):
        store.load(1)
    # A layer copied under another version, or altered, is refused and counted.
    store.redis.set(store.keys.batch_layer(4), store.redis.get(store.keys.batch_layer(5)))
    with pytest.raises(SnapshotError, match="holds"):
        store.load(4)
    data = bytearray(store.redis.get(store.keys.batch_layer(5)))
    data[-1] ^= 1
    store.redis.set(store.keys.batch_layer(5), bytes(data))
    with pytest.raises(SnapshotError, match="MAC"):
        store.load(5)
    assert store.rejected == 2
    with pytest.raises(ValueError, match="position"):
        store.publish(newest.layer, {"views": {0: 1}})


def _current(store: SnapshotStore) -> SnapshotMeta | None:
    version = store.current_version()
    return None if version is None else store.read_meta(version)


@pytest.mark.spark
def test_a_running_hybrid_trainer_swaps_in_a_retrained_batch_layer_and_keeps_learning(
    spark: Any,
    settings: Settings,
    settings_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = dataclasses.replace(settings, snapshot_interval=0.3)
    ensure_topics(settings, [settings.topic_page_views], partitions=2)
    base = int(time.time() * 1000) - 3_600_000
    rows = generate(n_users=50, n_pages=30, n_events=600, seed=8).rows()
    start = rows[0][2]
    first = [page_view(u, p, base + (t - start) // 1000) for u, p, t, _ in rows]
    assert produce_page_views(settings, first).delivered == len(first)

    store = snapshot_store(settings)
    stop, started = threading.Event(), threading.Event()
    live: dict[str, Trainer] = {}

    def ready(trainer: Trainer) -> None:
        live["trainer"] = trainer
        started.set()

    thread = threading.Thread(
        # A batch share served from the first swap on (the default, 0, waits for evidence).
        target=run_trainer,
        args=(settings, "hybrid", {"batch_weight": 0.1}, stop, 3.0, ready),
        daemon=True,
    )
    thread.start()
    try:
        assert started.wait(30)
        # No batch layer yet: the hybrid learns and serves its online layer alone.
        wait_for(lambda: (m := _current(store)) and m.events_seen == 600, 30, "600 learned")
        snap = store.load_current()
        assert snap is not None and isinstance(snap.model, Hybrid)
        assert snap.model.batch_layer is None

        # The batch layer, retrained on Spark from the topic while the trainer runs.
        monkeypatch.setattr(job, "spark_context", lambda master: SharedSpark(spark))
        result = CliRunner().invoke(
            main,
            ["retrain", "--model", "hybrid", "--publish", "live", "--idle-timeout", "1s"],
            env=settings.to_env(),
            catch_exceptions=False,
        )
        assert result.exit_code == 0, result.output
        out = json.loads(result.stdout.strip().splitlines()[-1])
        assert out["events"] == 600 and out["version"] == 1
        covered = out["offsets"][settings.topic_page_views]
        assert sum(covered.values()) == 600
        record = batch_layer_store(settings).load(1)
        assert record.meta.offsets == {
            settings.topic_page_views: {int(p): o for p, o in covered.items()}
        }

        # The trainer swaps it in, live, and publishes a snapshot that carries it.
        def holds_layer() -> bool:
            snap = store.load_current()
            return snap is not None and snap.model.batch_layer is not None  # type: ignore[attr-defined]

        wait_for(holds_layer, 20, "a snapshot carrying the batch layer")
        trainer = live["trainer"]
        assert trainer.batch_layers is not None and trainer.batch_layers.swaps == 1

        # Events after the retrain's offsets: a page the batch layer never saw, which
        # follows a known page for every new user.
        known = first[-1]["page_id"]
        second = []
        for i in range(50):
            second.append(page_view(f"late{i}", known, base + 3_000_000 + 2 * i))
            second.append(page_view(f"late{i}", "fresh-page", base + 3_000_001 + 2 * i))
        assert produce_page_views(settings, second).delivered == len(second)
        wait_for(lambda: (m := _current(store)) and m.events_seen == 700, 30, "700 learned")
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()

    # The online events went out as deltas on the full snapshot that carries the layer;
    # a scorer hot-swaps to the newest and serves batch layer + online layer.
    assert store.current_version() in store.delta_hints()
    holder = ModelHolder()
    assert holder.refresh(store)
    model = holder.current.model
    assert isinstance(model, Hybrid) and model.batch_layer is not None
    assert model.batch_layer.n_events == 600
    assert model.batch_layer.position == {settings.topic_page_views: covered}
    assert model.n_events_learned == 700  # nothing the online layer learned was lost
    assert "fresh-page" not in model.batch_layer.index
    history = [v["page_id"] for v in first if v["user_id"] == first[-1]["user_id"]][-5:]
    served = dict(model.recommend("someone", k=10, history=history))
    assert "fresh-page" in served  # learned online, after the batch layer's offsets
    batch = model.batch_layer.distribution(history, model.batch_recent, model.batch_recency)
    assert batch is not None
    scores = model.online.score_items("someone", list(served), history)
    online = dict(zip(served, scores, strict=True))
    w = model._weight_for(history)  # the learned batch share of this history's length
    assert 0.0 < w < 1.0
    for page, score in served.items():  # each served score mixes both layers
        assert score == pytest.approx((1 - w) * online[page] + w * batch.get(page))
    assert any(batch.get(page) > 0 for page in served)
