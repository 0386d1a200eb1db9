"""Small, recognisable snapshots to publish in tests."""

from __future__ import annotations

from online_model.models.popularity import DecayedPopularity
from online_model.persist.snapshot import Snapshot, SnapshotMeta


def popularity_on(prefix: str, n_pages: int = 5, origin: str = "trainer") -> Snapshot:
    """A popularity model that knows only pages ``<prefix>0..`` (p0 most popular)."""
    model = DecayedPopularity()
    for page in range(n_pages):
        for i in range(n_pages - page):
            model.learn_one(f"u{i}", f"{prefix}{page}")
    meta = SnapshotMeta(
        model_name="ignored",
        events_seen=model.n_events_learned,
        origin=origin,
        offsets={"pv": {0: model.n_events_learned}},
        metrics={"hit@10": 0.25 if prefix == "A" else 0.5},
    )
    return Snapshot(meta, model)


def popularity_snapshot() -> Snapshot:
    """A popularity model of 20 views over pages p0..p2, published as a trainer's."""
    model = DecayedPopularity()
    for i in range(20):
        model.learn_one(f"u{i}", f"p{i % 3}")
    meta = SnapshotMeta(model_name="ignored", events_seen=20, origin="trainer", offsets={})
    return Snapshot(meta, model, {})
