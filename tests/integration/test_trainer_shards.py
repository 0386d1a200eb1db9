"""What trainer shards refuse, on the real Redis (the processes themselves:
tests/reliability/test_trainer_shards.py)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import threading
from typing import Any

import pytest

from online_model.errors import ConfigurationError
from online_model.models.covisit.model import Covisitation
from online_model.persist.model_file import _tensor_bytes
from online_model.persist.snapshot import Snapshot, SnapshotMeta
from streams.io.codec import PAGE_VIEW, AvroCodec
from streams.io.producer import page_view
from streams.services.processes import wait_for
from streams.settings import Settings
from streams.state.snapshot_store import SnapshotStore
from streams.testing import ListEventSource
from streams.trainer.loop import Published, Trainer
from streams.trainer.merger import ShardMerger, partition_namespace
from tests.support.fixtures import StoreFactory

pytestmark = pytest.mark.trainer_shards


def test_shards_refuse_a_model_a_single_trainer_learned(
    settings: Settings, store: SnapshotStore, store_factory: StoreFactory
) -> None:
    """A single trainer's model is not split by partition: shards taking it over would
    publish a merge without what it learned. They refuse, naming the model."""
    model = Covisitation()
    model.learn_one("u1", "p1")
    store.publish(Snapshot(SnapshotMeta(settings.model_name, events_seen=1), model))
    part = store_factory(partition_namespace(settings.model_name, 0))
    merger = ShardMerger(
        store, {0: part}, Covisitation, model._get_params(), settings.topic_page_views
    )
    with pytest.raises(ConfigurationError, match="learned by a single trainer"):
        merger.check_model()


def test_the_trainer_refuses_a_bad_shard_and_a_model_that_does_not_add_up(
    settings_env: dict[str, str],
) -> None:
    for args, message in (
        (["--shard", "2/2"], "need 0 <= i < N"),
        (["--shard", "one"], "neither i/N"),
        (["--shard", "0/2", "--model", "mf"], "cannot be learned by trainer shards"),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "streams.cli", "trainer", *args],
            env=settings_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2 and message in done.stderr, done.stderr


def test_the_merger_takes_its_own_partitions_publishes_without_reading_them_back(
    settings: Settings,
    store: SnapshotStore,
    store_factory: StoreFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A shard's merger takes the state its partition trainers just published from them
    (reading it back from Redis and applying it again costs O(model) per publish), and
    merges exactly what it would have read."""
    codec = AvroCodec.bundled(PAGE_VIEW)
    parts = {p: store_factory(partition_namespace(settings.model_name, p)) for p in (0, 1)}
    trainers: dict[int, Trainer] = {}
    for p, store_p in parts.items():
        views = [
            page_view(f"u{p}-{i % 17}", f"p{(i * 7 + p) % 23}", 1_700_000_000_000 + 1000 * i)
            for i in range(300)
        ]
        source = ListEventSource([codec.encode(v) for v in views], topic="t")
        trainer = trainers[p] = Trainer(
            Covisitation(), store_p, source, codec.decode, snapshot_interval=0.0, max_records=25
        )
        stop = threading.Event()
        thread = threading.Thread(target=trainer.run, args=(stop,))
        thread.start()
        wait_for(lambda t=trainer: t.events_learned == 300, 30, "a partition learned")
        stop.set()
        thread.join(30)
        published = trainer.published
        assert published is not None and published.meta.version == store_p.current_version()
    reads: list[str] = []
    load = SnapshotStore.load

    def counted(self: SnapshotStore, *args: Any, **kwargs: Any) -> Snapshot:
        reads.append(self.model_name)
        return load(self, *args, **kwargs)

    monkeypatch.setattr(SnapshotStore, "load", counted)
    params = Covisitation()._get_params()
    merged = {}
    for name, local in (("local", lambda p: trainers[p].published), ("read back", None)):
        merger = ShardMerger(store, parts, Covisitation, params, "t", local=local)
        assert merger.refresh()
        merged[name] = _tensor_bytes(merger.merged()[1])
        if local is not None:
            assert reads == []
    assert sorted(reads) == sorted(s.model_name for s in parts.values())
    assert merged["local"] == merged["read back"]
    # Between a partition trainer's publish and its hand-over, the merger waits for it
    # rather than reading its own partition back.
    reads.clear()

    def one_behind(p: int) -> Published | None:
        mine = trainers[p].published
        assert mine is not None
        return dataclasses.replace(mine, meta=dataclasses.replace(mine.meta, version=0))

    merger = ShardMerger(store, parts, Covisitation, params, "t", local=one_behind)
    assert not merger.refresh() and not merger.held and reads == []
