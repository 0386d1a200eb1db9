"""The batch layer (Gram matrix, EASE) and the hybrid model: swaps, accounting, format 2."""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from online_model.errors import ModelError
from online_model.evaluation import PrequentialEvaluator, evaluate
from online_model.models.covisit import Covisitation
from online_model.models.hybrid import Hybrid
from online_model.models.itemitem import (
    Distribution,
    ease_weights,
    fit_item_item,
    neighbour_table,
    page_pair_counts,
    recent_page_sets,
)
from online_model.persist.snapshot import Snapshot, SnapshotMeta, dump_snapshot, load_snapshot
from streams.cli import main as cli
from tests.support.hybrid_events import Event, make_events, probes


# -- the batch layer ------------------------------------------------------------------------
def test_recent_page_sets_keep_the_last_distinct_pages_oldest_first() -> None:
    events = [("u", p, t) for t, p in enumerate(["a", "b", "c", "a", "d", "b"])]
    assert recent_page_sets(events, history_length=3) == {"u": ["a", "d", "b"]}
    assert recent_page_sets(events, history_length=10) == {"u": ["c", "a", "d", "b"]}
    with pytest.raises(ModelError):
        recent_page_sets(events, history_length=0)


def test_pair_counts_are_the_gram_matrix_of_the_user_page_matrix() -> None:
    rnd = random.Random(1)
    n_pages = 12
    sets = [rnd.sample(range(n_pages), rnd.randint(0, 6)) for _ in range(40)]
    x = np.zeros((len(sets), n_pages))
    for user, pages in enumerate(sets):
        x[user, pages] = 1.0
    counts = page_pair_counts(sets, n_pages)
    assert np.array_equal(counts.dense(), x.T @ x)
    assert bool(np.all(counts.row <= counts.col))
    with pytest.raises(ModelError):
        page_pair_counts([[1, 1]], n_pages)  # a set holds each page once


def test_ease_matches_its_defining_regression_column_by_column() -> None:
    """EASE's closed form equals ridge regressions of each page on the others."""
    rnd = random.Random(2)
    n_pages, l2 = 9, 3.0
    sets = [rnd.sample(range(n_pages), rnd.randint(1, 5)) for _ in range(50)]
    x = np.zeros((len(sets), n_pages))
    for user, pages in enumerate(sets):
        x[user, pages] = 1.0
    weights = ease_weights(page_pair_counts(sets, n_pages), l2)
    for j in range(n_pages):
        others = [i for i in range(n_pages) if i != j]
        xo = x[:, others]
        ridge = np.linalg.solve(xo.T @ xo + l2 * np.eye(len(others)), xo.T @ x[:, j])
        assert np.allclose(weights[others, j], ridge)
        assert weights[j, j] == 0.0


def test_neighbour_table_keeps_the_strongest_positive_weights_in_order() -> None:
    weights = np.array(
        [[0.0, 0.5, -1.0, 0.2], [0.1, 0.0, 0.3, 0.3], [0.0, 0.0, 0.0, -2.0], [1, 2, 3, 0]]
    )
    indptr, page, weight = neighbour_table(weights, n_neighbours=2)
    rows = [
        list(zip(page[a:b].tolist(), weight[a:b].tolist(), strict=True))
        for a, b in itertools.pairwise(indptr)
    ]
    assert rows == [[(1, 0.5), (3, 0.2)], [(2, 0.3), (3, 0.3)], [], [(2, 3.0), (1, 2.0)]]


def test_fit_caps_pages_and_scores_co_held_pages() -> None:
    events = make_events()
    layer = fit_item_item(events, max_pages=20, l2=10.0)
    assert layer.n_pages == 20 and layer.n_events == len(events)
    dist = layer.distribution([layer.pages[0]])
    assert dist is not None
    assert sum(p for _, p in dist.top(layer.n_pages)) == pytest.approx(1.0)
    assert layer.distribution(["never-seen"]) is None


def test_a_page_without_positive_neighbours_scores_nothing() -> None:
    # "c" is held by one user alone with a page nobody else holds: no positive weights.
    events = [("a", "x", 1), ("a", "y", 2), ("b", "x", 3), ("b", "y", 4), ("c", "z", 5)]
    layer = fit_item_item(events, l2=0.5)
    assert layer.distribution(["z"]) is None
    assert layer.probabilities(["z"]) == {}


# -- the hybrid ------------------------------------------------------------------------------
def _learn(model: Any, events: Sequence[Event]) -> Any:
    for user, page, ts in events:
        model.learn_one(user, page, x={"ts": ts})
    return model


def test_without_a_batch_layer_it_is_exactly_covisit() -> None:
    events = make_events()
    hybrid, covisit = _learn(Hybrid(), events), _learn(Covisitation(), events)
    assert probes(hybrid, events) == probes(covisit, events)
    assert hybrid.n_events_learned == covisit.n_events_learned == len(events)
    assert hybrid.weight == 0.0
    report_h = evaluate(Hybrid(), events, retrain_every=0)
    report_c = evaluate(Covisitation(), events)
    assert (report_h["hit@10"], report_h["mrr@10"]) == (report_c["hit@10"], report_c["mrr@10"])


def test_a_swap_keeps_what_the_online_layer_learned() -> None:
    events = make_events()
    model = _learn(Hybrid(batch_weight=0.5), events[:2_000])
    model.set_batch_layer(model.fit_batch_layer(events[:1_000]))
    _learn(model, events[2_000:2_500])
    online_before = model.online.state_arrays()
    weight_before = model.weight
    served_before = probes(model, events[:2_500])

    model.set_batch_layer(model.fit_batch_layer(events[:2_500]))

    online_after = model.online.state_arrays()
    assert online_after.values == online_before.values
    assert all(np.array_equal(online_after.arrays[n], a) for n, a in online_before.arrays.items())
    assert model.weight == weight_before and model.n_events_learned == 2_500
    assert probes(model, events[:2_500]) != served_before  # the new layer serves
    # ...and the online layer learns on from where it was, as if no swap had happened.
    reference = _learn(Covisitation(), events)
    _learn(model, events[2_500:])
    assert probes(model.online, events) == probes(reference, events)


def test_no_event_counted_in_both_or_in_neither() -> None:
    events = make_events()
    model = _learn(Hybrid(), events[:1_500])
    with pytest.raises(ModelError, match="only learned 1500"):
        model.set_batch_layer(model.fit_batch_layer(events[:1_600]))  # beyond the online layer
    model.set_batch_layer(model.fit_batch_layer(events[:1_200]))
    with pytest.raises(ModelError, match="fewer than"):
        model.set_batch_layer(model.fit_batch_layer(events[:1_000]))  # an older fit
    layer = model.batch_layer
    assert layer is not None and layer.n_events == 1_200 and layer.position == 1_200
    # Item-item weights come from the batch layer alone: learning online leaves them be.
    arrays = {n: a.copy() for n, a in layer.state_arrays().arrays.items()}
    _learn(model, events[1_500:])
    assert all(np.array_equal(layer.state_arrays().arrays[n], a) for n, a in arrays.items())
    assert model.online.n_events_learned == len(events)


class _RecordingRetrain(Covisitation):
    """A covisit that records the events each batch refit is given."""

    retrain_every = 0

    def __init__(self) -> None:
        super().__init__()
        self.fits: list[list[Any]] = []

    def fit_batch_layer(self, events: Sequence[Sequence[Any]], position: Any = None) -> Any:
        self.fits.append([tuple(e) for e in events])
        return position

    def set_batch_layer(self, layer: Any) -> None:
        assert layer == len(self.fits[-1])


def test_evaluation_refits_only_on_events_before_each_refit() -> None:
    events = make_events(1_000)
    model = _RecordingRetrain()
    ev = PrequentialEvaluator(model, retrain_every=300)
    for user, page, ts in events:
        ev.update(user, page, ts)
    assert [len(f) for f in model.fits] == [300, 600, 900]
    assert all(f == [tuple(e) for e in events[: len(f)]] for f in model.fits)
    assert ev.report()["n_refits"] == 3 and ev.report()["retrain_every"] == 300
    with pytest.raises(ModelError, match="no batch layer"):
        PrequentialEvaluator(Covisitation(), retrain_every=10)


def test_retraining_uses_the_models_own_cadence_by_default() -> None:
    events = make_events(1_000)
    report = evaluate(Hybrid(retrain_every=400), events)
    assert report["n_refits"] == 2 and report["retrain_every"] == 400


def test_format_2_round_trip_with_a_batch_layer() -> None:
    events = make_events()
    model = _learn(Hybrid(batch_weight=0.4), events[:2_000])
    model.set_batch_layer(model.fit_batch_layer(events[:1_800]))
    _learn(model, events[2_000:2_400])
    data = dump_snapshot(Snapshot(SnapshotMeta("hybrid"), model), b"k" * 32, allow_pickle=False)
    restored = load_snapshot(data, b"k" * 32, allow_pickle=False).model
    assert isinstance(restored, Hybrid) and restored.batch_layer is not None
    assert restored.batch_layer.position == 1_800 and restored.weight == model.weight
    assert probes(restored, events[:2_400]) == probes(model, events[:2_400])
    for m in (model, restored):
        _learn(m, events[2_400:])
    assert restored.weight == model.weight
    assert probes(restored, events) == probes(model, events)


def test_evaluate_command_retrains_the_hybrid_and_refuses_other_models(tmp_path) -> None:
    path = tmp_path / "views.csv"
    path.write_text(
        "user_id,page_id,ts_ms\n" + "".join(f"{u},{p},{t}\n" for u, p, t in make_events(900))
    )
    runner = CliRunner()
    args = ["evaluate", "--input", str(path), "--model", "hybrid", "--retrain-every", "250"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["retrain_every"] == 250 and report["n_refits"] == 3
    refused = runner.invoke(cli, [*args[:4], "covisit", *args[5:]])
    assert refused.exit_code == 2
    assert "error: --retrain-every: Covisitation has no batch layer" in refused.stderr


# -- what the batch layer reads ----------------------------------------------------------------
def test_the_fit_reads_whole_histories_not_the_last_20_pages() -> None:
    # Pages a and b open every user's history; 30 pages of the user's own follow. A fit on
    # the last 20 pages never saw a and b together (it dropped the start of each history).
    events: list[Event] = []
    for u in range(30):
        pages = ["a", "b", *(f"{u}-{i}" for i in range(30))]
        events += [(f"u{u}", page, len(events)) for page in pages]
    layer = fit_item_item(events)
    assert layer.probabilities(["a"]) and next(iter(layer.probabilities(["a"]))) == "b"
    assert fit_item_item(events, history_length=20).distribution(["a"]) is None


def test_serving_weighs_the_newest_history_pages() -> None:
    # a goes with x, b with y.
    pairs = [("1", "a"), ("1", "x"), ("2", "a"), ("2", "x")]
    pairs += [("3", "b"), ("3", "y"), ("4", "b"), ("4", "y")]
    events = [(u, p, t) for t, (u, p) in enumerate(pairs)]
    layer = fit_item_item(events, l2=0.5)
    newest = layer.score_vector(["a", "b"], n_recent=1)
    both = layer.score_vector(["a", "b"], n_recent=2)
    halved = layer.score_vector(["a", "b"], n_recent=2, recency=0.5)
    assert newest is not None and both is not None and halved is not None
    x, y = layer.index["x"], layer.index["y"]
    assert newest[x] == 0.0 and newest[y] > 0.0  # a (age 1) is left out
    assert both[x] == pytest.approx(both[y]) and halved[x] == pytest.approx(0.5 * halved[y])
    model = _learn(Hybrid(batch_recent=1, batch_weight=0.9), events)
    model.set_batch_layer(layer)
    assert model.recommend("new", k=1, history=["a", "b"], exclude={"a", "b"})[0][0] == "y"


def test_each_history_length_learns_its_own_batch_share() -> None:
    # Two-page users only: every judged event falls in the 1-page bucket. Their second
    # page is new since the fit (the batch layer only pushes it down), so that bucket
    # leaves its starting 0.3 for 0 once it has the evidence; the rest stay.
    events = make_events()
    model = _learn(Hybrid(batch_weight=0.3), events)
    model.set_batch_layer(model.fit_batch_layer(events))
    first_pages = [p for _, p, _ in events[:20]]
    for u in range(300):
        model.learn_one(f"new{u}", first_pages[u % 20])
        model.learn_one(f"new{u}", "fresh")
    assert model.weights == [0.0] + [0.3] * 5


class _Dist:
    """A batch distribution given outright: ``probs`` best first."""

    def __init__(self, probs: dict[str, float]) -> None:
        self.probs = probs

    def get(self, page: Any, default: float = 0.0) -> float:
        return self.probs.get(page, 0.0)

    def top(self, n: int, exclude: Any = ()) -> list[tuple[str, float]]:
        return [(p, v) for p, v in self.probs.items() if p not in exclude][:n]


#: The online layer's list after "h", whatever came before: t0..t9 at 0.09, t10..t19 at 0.01.
_ONLINE = {f"t{j}": 0.09 if j < 10 else 0.01 for j in range(20)}


class _FixedOnline(Covisitation):
    """A covisit that learns as usual but serves ``_ONLINE`` to every history."""

    def _recommend(self, user: Any, k: int, history: Any, exclude: Any) -> Any:
        return [(p, v) for p, v in _ONLINE.items() if p not in exclude][:k]

    def score_items(self, user: Any, items: Any, history: Any = ()) -> list[float]:
        return [_ONLINE.get(i, 0.0) for i in items]


def _hinted_stream(batch: dict[str, dict[str, float]], draws: list[tuple[str, str]]) -> Hybrid:
    """Users that view a hint page, "h", then a target, (hint, target) cycling ``draws``;
    the batch layer serves ``batch[hint]`` to a history holding that hint."""
    events = make_events(300)
    model = _learn(Hybrid(), events)
    model.batch_layer = model.fit_batch_layer(events)
    model.online = _FixedOnline()

    def distribution(history: Sequence[Any]) -> _Dist:
        return _Dist(batch.get(history[0], {}))

    model._batch_distribution = distribution
    for u in range(400):
        hint, target = draws[u % len(draws)]
        for page in (hint, "h", target):
            model.learn_one(f"u{u}", page)
    return model


def test_a_batch_layer_with_the_larger_likelihood_that_costs_hits_gets_no_weight() -> None:
    # Half the users: a hint the batch layer reads, with most of its mass on the target
    # (0.5 against the online 0.09): the likelihood share of the batch layer is high, but
    # the target is in the online top 10 already. The other half: a hint the batch layer
    # answers with two other pages, which from w = 0.2 on push the targets (online ranks
    # 9 and 10) out of the top 10. Likelihood share steps w up from its start; hit@10 wants 0.
    batch = {f"a{j}": {f"t{j}": 0.5, **{f"e{i}": 0.05 for i in range(10)}} for j in range(10)}
    batch["b"] = {"e0": 0.5, "e1": 0.5}
    draws = [(f"a{j}", f"t{j}") for j in range(10)]
    draws = [d for pair in zip(draws, [("b", "t8"), ("b", "t9")] * 5, strict=True) for d in pair]
    model = _hinted_stream(batch, draws)
    assert model.weights[1] == 0.0  # the bucket of 2-page histories: [hint, "h"]
    hits = model._hits[1]
    assert hits[0] == hits[1] == hits[2] > hits[3]  # 0, 0.05 and 0.1 tie: the smallest wins


def test_a_batch_layer_that_adds_hits_gets_the_smallest_weight_that_adds_them() -> None:
    # Half the users: a target in the online top 10 (hit whatever w). The other half: a
    # target the online layer ranks 11-20 (0.01), which the batch layer gives 0.5: from
    # w = 0.2 on it enters the top 10.
    batch = {f"c{j}": {f"t{j}": 0.5} for j in range(10, 20)}
    draws = [(f"a{j}", f"t{j}") for j in range(10)]
    draws = [
        d
        for pair in zip(draws, [(f"c{j}", f"t{j}") for j in range(10, 20)], strict=True)
        for d in pair
    ]
    model = _hinted_stream(batch, draws)
    assert model.weights[1] == 0.2
    served = [page for page, _ in model.recommend("x", k=10, history=["c15", "h"])]
    assert "t15" in served


def test_a_weight_needs_evidence_and_a_significant_gain_to_leave_its_start() -> None:
    events = make_events(1_000)
    model = _learn(Hybrid(batch_weight=0.1), events)
    model.set_batch_layer(model.fit_batch_layer(events))
    assert model.weights == [0.1] * 6  # nothing judged yet: the start is served
    model._judged[2] = 1_000.0
    model._hits[2] = [100.0, 101.0, 104.0, 110.0, 130.0, 125.0]
    model._disagree[2] = [0.0, 1.0, 4.0, 10.0, 400.0, 30.0]
    # 0.05 and 0.1 gain too little; 0.35 gains 30 of 400 disagreements (< 2 sd): 0.5 wins
    # over 0.2 (more hits), both significant.
    assert model._choose(2) == 0.5
    model._judged[2] = 100.0
    assert model._choose(2) == 0.1  # too few judged events: the start


def test_a_file_with_one_weight_loads_it_for_every_history_length() -> None:
    events = make_events(1_000)
    model = _learn(Hybrid(), events)
    model.set_batch_layer(model.fit_batch_layer(events))
    state = model.state_arrays()
    for name in ("weights", "prior", "hits", "disagree", "judged"):
        del state.values[name]
    state.values["weight"] = 0.4  # as written before one weight per length was learned
    restored = Hybrid.from_state(model._get_params(), state)
    assert restored.weights == [0.4] * len(restored.weights)
    assert not restored._judged.any()  # served until the evidence is in


def test_the_judged_hits_survive_a_round_trip() -> None:
    events = make_events()
    model = _learn(Hybrid(), events[:2_000])
    model.set_batch_layer(model.fit_batch_layer(events[:2_000]))
    _learn(model, events[2_000:])
    assert model._judged.sum() > 0
    restored = Hybrid.from_state(model._get_params(), model.state_arrays())
    assert np.array_equal(restored._hits, model._hits)
    assert np.array_equal(restored._disagree, model._disagree)
    assert np.array_equal(restored._judged, model._judged)
    assert restored.weights == model.weights


def test_a_distribution_ranks_its_positive_pages_best_first() -> None:
    rnd = random.Random(3)
    events = make_events()
    layer = fit_item_item(events, l2=10.0)
    for _ in range(20):
        # Probabilities with zeros and ties; ties rank the lower row (earlier page) first.
        prob = np.array([rnd.choice([0.0, 0.0, 0.1, 0.2, 0.25]) for _ in range(layer.n_pages)])
        exclude = set(rnd.sample(layer.pages, 5))
        expected = sorted(
            ((-p, row) for row, p in enumerate(prob.tolist()) if p > 0),
        )
        reference = [(layer.pages[r], -q) for q, r in expected if layer.pages[r] not in exclude]
        dist = Distribution(layer, prob)
        assert dist.get(layer.pages[0]) == prob[0] and dist.get("unknown", -1.0) == -1.0
        assert dist.top(7, exclude) == reference[:7]
        assert all(dist.get(page) == p for page, p in reference)
        assert dist.get(layer.pages[0]) == prob[0] and dist.get("unknown", -1.0) == -1.0
        assert dist.top(0) == [] and len(dist.top(10_000)) == int(np.count_nonzero(prob))
