"""Forgetting deleted pages: the model, its snapshots and deltas, and the trainer's side."""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest

from online_model.catalog import Catalog
from online_model.data.generate import generate
from online_model.models.blend import Blend
from online_model.models.covisit import Covisitation
from online_model.models.factorization import ImplicitMF
from online_model.models.forgetting import can_forget
from online_model.models.popularity import DecayedPopularity
from online_model.registry import make_model
from streams.trainer.catalog_sync import CatalogSync
from streams.trainer.quality_estimate import RollingHitRate


def learned(model_class: type = Covisitation, n_events: int = 4_000) -> object:
    model = model_class()
    for user, page, ts, _ in generate(n_users=200, n_pages=120, n_events=n_events, seed=5).rows():
        model.learn_one(user, page, x={"ts": ts})
    return model


def pages_in(state) -> set[str]:
    return set(state.strings["pages"])


def test_a_forgotten_page_leaves_rows_links_histories_and_popularity() -> None:
    model = learned()
    assert isinstance(model, Covisitation)
    gone = {page for page, _ in model.recommend("x", 3, history=[])}  # the most popular
    linked_to = [src for src, row in model._neighbours.items() if not gone.isdisjoint(row)]
    assert linked_to and any(not gone.isdisjoint(h) for h in model._histories.values())
    assert model.forget(gone | {"never-seen"}) == len(gone)
    assert not gone & set(model._neighbours)
    assert all(gone.isdisjoint(row) for row in model._neighbours.values())
    assert all(gone.isdisjoint(h) for h in model._histories.values())
    for src, row in model._neighbours.items():  # what is left is still a distribution
        assert 0 < sum(row.values()) <= model._out[src] * (1 + 1e-9)
    state = model.state_arrays()
    assert not gone & pages_in(state)
    copy = Covisitation.from_state(model._get_params(), state)
    history = ["p1", "p2", "p3"]
    assert copy.recommend("x", 10, history) == model.recommend("x", 10, history)
    assert not gone & {page for page, _ in model.recommend("x", 50, history)}
    assert model.forget(gone) == 0  # nothing left to forget


def test_after_forgetting_the_next_snapshot_is_full_then_deltas_resume() -> None:
    model = learned()
    assert isinstance(model, Covisitation)
    model.mark_published()
    model.learn_one("u1", "p7")
    assert model.state_delta() is not None
    model.forget({"p7"})
    assert model.state_delta() is None  # pages left the table: only a full state says it
    base = model.state_arrays()
    model.mark_published()
    for n in range(50):
        model.learn_one(f"u{n % 9}", f"p{n % 13}", x={"ts": 10**12 + n})
    delta = model.state_delta()
    assert delta is not None
    applied = Covisitation.apply_state_delta(base, delta)
    full = model.state_arrays()
    assert applied.strings == full.strings
    for name, array in full.arrays.items():
        np.testing.assert_allclose(applied.arrays[name], array, err_msg=name)


def test_a_model_loaded_from_a_snapshot_forgets_too() -> None:
    model = learned()
    loaded = Covisitation.from_state(model._get_params(), model.state_arrays())  # type: ignore[attr-defined]
    history = ["p1", "p2"]
    top = loaded.recommend("x", 1, history)[0][0]  # served from the arrays
    assert loaded.forget({top}) == 1
    assert top not in {page for page, _ in loaded.recommend("x", 50, history)}
    loaded.learn_one("u1", "p1")  # and keeps learning


def test_which_models_can_forget() -> None:
    assert can_forget(Covisitation()) and can_forget(DecayedPopularity())
    assert can_forget(make_model("blend", {"models": "covisit:1.0,popularity:0.1"}))
    assert not can_forget(ImplicitMF())
    assert not can_forget(Blend())  # its mf member would keep recommending them


class Clock:
    def __init__(self, monkeypatch: pytest.MonkeyPatch, now_ms: int) -> None:
        self.now_ms = now_ms
        monkeypatch.setattr(time, "time", lambda: self.now_ms / 1000)


def test_catalog_sync_forgets_deleted_and_expired_pages_not_hidden_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock(monkeypatch, 1_000_000)
    model = DecayedPopularity()
    for page in ("deleted", "hidden", "expiring", "moved", "back", "kept"):
        model.learn_one("u", page)
    sync = CatalogSync(sweep_s=3600, batch_s=0)
    assert sync.prune(model) is False  # the first sweep: nothing is gone yet
    sync.observe("deleted", None)
    sync.observe("hidden", {"page_id": "hidden", "available": False})
    sync.observe("expiring", {"page_id": "expiring", "expires_at": 1_000_500})
    sync.observe("moved", {"page_id": "moved", "expires_at": 1_000_500})
    sync.observe("moved", {"page_id": "moved", "expires_at": 9_000_000})  # postponed
    sync.observe("back", None)
    sync.observe("back", {"page_id": "back"})  # deleted, then published again
    assert sync.prune(model) is True
    assert set(model._counts) == {"hidden", "expiring", "moved", "back", "kept"}
    assert sync.prune(model) is False  # no change, nothing expired: a no-op
    clock.now_ms = 1_000_500
    assert sync.prune(model) is True
    assert set(model._counts) == {"hidden", "moved", "back", "kept"}
    assert sync.pages_forgotten == 2 and sync.gone() == {"deleted", "expiring"}


def test_a_deleted_page_viewed_again_is_forgotten_again_at_the_next_sweep() -> None:
    model = DecayedPopularity()
    sync = CatalogSync(sweep_s=0.05, batch_s=0)
    sync.observe("deleted", None)
    model.learn_one("u", "deleted")
    assert sync.prune(model) is True
    model.learn_one("u", "deleted")  # a stale link still brings views
    assert sync.prune(model) is False  # between sweeps: kept for now
    time.sleep(0.06)
    assert sync.prune(model) is True and model.n_items == 0


def test_a_model_that_cannot_forget_is_said_once(caplog: pytest.LogCaptureFixture) -> None:
    model = ImplicitMF()
    model.learn_one("u", "deleted")
    sync = CatalogSync(batch_s=0)
    with caplog.at_level(logging.WARNING):
        sync.observe("deleted", None)
        assert sync.prune(model) is False
        sync.observe("other", None)
        assert sync.prune(model) is False
    assert sum("model_cannot_forget" in r.message for r in caplog.records) == 1


def test_the_estimate_judges_lists_as_scorers_serve_them() -> None:
    """A hidden page the model would rank first is not in the judged list: a view of it
    is a miss, and the next page takes its place."""
    model = DecayedPopularity()
    for page in ["hot"] * 5 + ["warm"] * 3:
        model.learn_one("crowd", page)
    catalog = Catalog()
    catalog.apply("hot", {"page_id": "hot", "available": False})
    plain, served = RollingHitRate(k=1, every=1), RollingHitRate(k=1, every=1, catalog=catalog)
    for est in (plain, served):
        est.before_learn(model, "v", "first")  # the first view starts the history
        est.before_learn(model, "v", "hot")
        est.before_learn(model, "w", "first")
        est.before_learn(model, "w", "warm")
    assert (plain.n_scored, served.n_scored) == (2, 2)
    assert plain.hit == 0.5  # "hot" hit, "warm" missed ("hot" ranked first)
    assert served.hit == 0.5  # "hot" missed, "warm" hit (first once "hot" is filtered)
    assert served.report()["hit@1"] == 0.5
    hot_only = RollingHitRate(k=1, every=1, catalog=catalog)
    hot_only.before_learn(model, "v", "first")
    hot_only.before_learn(model, "v", "hot")
    assert hot_only.hit == 0.0


def test_changes_are_gathered_and_forgotten_at_most_once_per_batch() -> None:
    model = DecayedPopularity()
    for page in ("a", "b"):
        model.learn_one("u", page)
    sync = CatalogSync(batch_s=0.1)
    sync.observe("a", None)
    assert sync.prune(model) is True
    sync.observe("b", None)
    assert sync.prune(model) is False and model.n_items == 1  # within the batch: waits
    time.sleep(0.11)
    assert sync.prune(model) is True and model.n_items == 0
