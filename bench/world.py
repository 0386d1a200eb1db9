"""The synthetic site the pipeline benches run on, and the model trained on it.

One generated world (100k users, 10k pages by default): its first ``n_train`` events
train the default model (that snapshot is what every scorer variant serves, and those
events are what the trainer and replay benches learn from the topic); the following
``n_score`` events are what the scorers answer, by users who already have a history.
"""

from __future__ import annotations

import dataclasses
import logging
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from online_model.base import Recommender
from online_model.data.generate import generate
from online_model.persist.snapshot import Snapshot, SnapshotMeta
from online_model.registry import DEFAULT_MODEL, make_model
from streams.settings import Settings
from streams.state.snapshot_store import SnapshotStore
from streams.wiring import snapshot_store

from .harness import Row, last_pages

log = logging.getLogger(__name__)


@dataclass
class World:
    n_users: int
    n_pages: int
    train: list[Row]
    score: list[Row]
    model: Recommender | None = None
    learn_runs: list[float] = field(default_factory=list)  # raw learn_one events/s
    _histories: dict[int, dict[str, list[str]]] = field(default_factory=dict, repr=False)

    def start_histories(self, length: int) -> dict[str, list[str]]:
        """Each scoring user's last ``length`` pages of the training events: what a scorer
        run starts with in Redis (computed once per length)."""
        if length not in self._histories:
            users = {u for u, _, _, _ in self.score}
            self._histories[length] = last_pages(self.train, users, length)
        return self._histories[length]

    def describe(self) -> dict[str, Any]:
        return {
            "n_users": self.n_users,
            "n_pages": self.n_pages,
            "n_train": len(self.train),
            "n_score": len(self.score),
            "model": DEFAULT_MODEL,
            "generator_seed": 7,
        }


def make_world(n_users: int, n_pages: int, n_train: int, n_score: int) -> World:
    started = time.perf_counter()
    views = generate(n_users=n_users, n_pages=n_pages, n_events=n_train + n_score, seed=7)
    rows = views.rows()
    log.info("world generated events=%d s=%.1f", len(rows), time.perf_counter() - started)
    return World(n_users, n_pages, rows[:n_train], rows[n_train:])


def learn(rows: list[Row]) -> tuple[Recommender, float]:
    """A fresh default model trained on ``rows``, and its learn_one rate (events/s)."""
    model = make_model(DEFAULT_MODEL, {})
    learn_one = model.learn_one
    started = time.perf_counter()
    for user, page, ts, _ in rows:
        learn_one(user, page, x={"ts": ts})
    return model, len(rows) / (time.perf_counter() - started)


def train(world: World, raw_runs: int = 3, raw_events: int = 200_000) -> World:
    """Train the served model on all of ``train``; measure raw learn_one on a prefix."""
    world.model, rate = learn(world.train)
    world.learn_runs = [rate]
    prefix = world.train[:raw_events]
    for _ in range(raw_runs - 1):
        world.learn_runs.append(learn(prefix)[1])
    log.info("raw learn_one events/s median=%.0f", statistics.median(world.learn_runs))
    return world


def store_for(settings: Settings) -> SnapshotStore:
    bench_settings = dataclasses.replace(settings, snapshot_keep=max(settings.snapshot_keep, 20))
    return snapshot_store(bench_settings, settings.redis_client(socket_timeout=30))


def publish(
    settings: Settings,
    model: Recommender,
    origin: str = "bench",
    offsets: dict[str, dict[int, int]] | None = None,
) -> int:
    """Publish ``model`` as the current snapshot of ``settings.model_name``."""
    meta = SnapshotMeta(
        model_name=settings.model_name,
        created_at=time.time(),
        events_seen=int(getattr(model, "n_events_learned", 0)),
        origin=origin,
        offsets=offsets or {},
    )
    return store_for(settings).publish(Snapshot(meta, model, {}))
