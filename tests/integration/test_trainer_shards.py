"""What trainer shards refuse, on the real Redis (the processes themselves:
tests/reliability/test_trainer_shards.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from online_model.errors import ConfigurationError
from online_model.models.covisit.model import Covisitation
from online_model.persist.snapshot import Snapshot, SnapshotMeta
from streams.settings import Settings
from streams.state.snapshot_store import SnapshotStore
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
