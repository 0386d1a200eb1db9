"""The merge of models learned in parts (one per partition): equal to one model on the
same events where the statistics add up (online_model.models.shard_merge)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from online_model.data.generate import generate
from online_model.errors import ConfigurationError
from online_model.models.covisit.model import Covisitation
from online_model.models.factorization import ImplicitMF
from online_model.models.merged_chain import MergedChain
from online_model.models.popularity import DecayedPopularity
from online_model.models.shard_merge import check_shardable, merge_states, partition_params

N_PARTS = 3


def _events(n_events: int = 6_000, n_pages: int = 150) -> list[tuple[str, str, int]]:
    views = generate(n_users=300, n_pages=n_pages, n_events=n_events, seed=7)
    return [(u, p, t) for u, p, t, _ in views.rows()]


def _part_of(user: str) -> int:
    return int(user[1:]) % N_PARTS  # users stay in one part, as keys stay in one partition


def _learn(cls: Any, params: dict[str, Any], events: list[tuple[str, str, int]]) -> tuple:
    """One model on every event, and one per part on its users' events."""
    single = cls(**params)
    parts = [cls(**partition_params(cls, params, N_PARTS)) for _ in range(N_PARTS)]
    for user, page, ts in events:
        single.learn_one(user, page, x={"ts": ts})
        parts[_part_of(user)].learn_one(user, page, x={"ts": ts})
    merged_state = merge_states(cls, params, [(m._get_params(), m.state_arrays()) for m in parts])
    return single, cls.from_state(dict(params), merged_state)


def _rows(model: Covisitation) -> dict:
    return {src: dict(row) for src, row in model._neighbours.items()}


@pytest.mark.parametrize(
    "params",
    [
        {"half_life": 0, "pop_half_life": 0},  # plain counts
        {"half_life": 3_600, "pop_half_life": 600, "unit": "seconds"},  # decay by timestamp
    ],
    ids=["counts", "decay-seconds"],
)
def test_merged_covisitation_equals_one_model_on_the_same_events(params: dict) -> None:
    params = {**params, "max_neighbours": 10_000, "backoff_rate": 0.0}  # nothing pruned
    single, merged = _learn(Covisitation, params, _events())
    assert merged.n_events_learned == single.n_events_learned == 6_000
    # Popularity: the same counts (as shares, since decay frames differ by a constant).
    pop_single, pop_merged = single._popularity, merged._popularity
    assert set(pop_merged._counts) == set(pop_single._counts)
    for page in pop_single._counts:
        assert pop_merged.probability(page) == pytest.approx(pop_single.probability(page), rel=1e-9)
    # The transition graph: every link and every page's outgoing weight, to one scale.
    scale = sum(single._out.values()) / sum(merged._out.values())
    rows_single, rows_merged = _rows(single), _rows(merged)
    assert set(rows_merged) == set(rows_single)
    for src, row in rows_single.items():
        assert merged._out[src] * scale == pytest.approx(single._out[src], rel=1e-9)
        assert set(rows_merged[src]) == set(row)
        for dst, weight in row.items():
            assert rows_merged[src][dst] * scale == pytest.approx(weight, rel=1e-9)
    # So they serve the same lists.
    for history in (["p1"], ["p3", "p10"], ["p40", "p2", "p7"]):
        want = [p for p, _ in single.recommend("x", 10, history, set())]
        assert [p for p, _ in merged.recommend("x", 10, history, set())] == want


def test_merged_popularity_equals_one_model_and_keeps_the_top_list() -> None:
    params = {"half_life": 0}
    single, merged = _learn(DecayedPopularity, params, _events())
    assert merged._counts == pytest.approx(single._counts)
    # The same top list (equal counts may come in another order: compare as scores).
    assert dict(merged.top()) == pytest.approx(dict(single.top()))
    assert [s for _, s in merged.recommend("x", 20)] == pytest.approx(
        [s for _, s in single.recommend("x", 20)]
    )


def test_decay_in_events_divides_each_parts_half_life_by_the_partitions() -> None:
    """Each part sees about 1/3 of the events: its half-lives are a third, so the merged
    popularity fades about as fast as one model's (not three times slower)."""
    params: dict[str, Any] = {"half_life": 3_000, "pop_half_life": 300}
    part = partition_params(Covisitation, params, N_PARTS)
    assert (part["half_life"], part["pop_half_life"]) == (1_000.0, 100.0)
    single, merged = _learn(Covisitation, params, _events())
    top_single = [p for p, _ in single._popularity.top()[:10]]
    top_merged = [p for p, _ in merged._popularity.top()[:10]]
    assert len(set(top_single) & set(top_merged)) >= 8
    # Without the division the parts' popularity would lag: it does not match as well.
    slow = [Covisitation(**params) for _ in range(N_PARTS)]
    for user, page, ts in _events():
        slow[_part_of(user)].learn_one(user, page, x={"ts": ts})
    shares = np.array([single._popularity.probability(p) for p in single._popularity._counts])
    merged_shares = np.array(
        [merged._popularity.probability(p) for p in single._popularity._counts]
    )
    slow_model = Covisitation.from_state(
        params, merge_states(Covisitation, params, [(params, m.state_arrays()) for m in slow])
    )
    slow_shares = np.array(
        [slow_model._popularity.probability(p) for p in single._popularity._counts]
    )
    assert np.abs(merged_shares - shares).sum() < np.abs(slow_shares - shares).sum()


def test_the_merge_keeps_one_models_bound_on_links_per_page() -> None:
    params = {"half_life": 0, "pop_half_life": 0, "max_neighbours": 5}
    _, merged = _learn(Covisitation, params, _events())
    assert max(len(row) for row in merged._neighbours.values()) <= 10


def test_models_whose_state_does_not_add_up_refuse_shards() -> None:
    check_shardable(Covisitation())
    check_shardable(DecayedPopularity)
    with pytest.raises(ConfigurationError, match="cannot be learned by trainer shards"):
        check_shardable(ImplicitMF)


def test_parts_learn_the_mixture_weight_on_the_merged_model_they_are_given() -> None:
    """On its own sparser graph a part credits popularity with more than one model does;
    scored on the whole graph (here one model's, standing in for the merge) it does not."""
    events = _events(12_000)
    params: dict[str, Any] = {}
    single = Covisitation(**params)
    alone = [Covisitation(**partition_params(Covisitation, params, N_PARTS)) for _ in range(3)]
    guided = [Covisitation(**partition_params(Covisitation, params, N_PARTS)) for _ in range(3)]
    for part in guided:
        part.set_mixture_reference(single)
    for user, page, ts in events:
        part = _part_of(user)
        alone[part].learn_one(user, page, x={"ts": ts})
        guided[part].learn_one(user, page, x={"ts": ts})
        single.learn_one(user, page, x={"ts": ts})  # after the parts: scored before learning
    gap_alone = max(abs(p._mixture - single._mixture) for p in alone)
    gap_guided = max(abs(p._mixture - single._mixture) for p in guided)
    assert gap_guided < gap_alone
    assert "_mixture_reference" not in guided[0].__getstate__()  # never stored


@pytest.mark.parametrize("decay", [False, True], ids=["counts", "decay-events"])
def test_the_merge_kept_up_to_date_by_deltas_serves_as_a_fresh_merge(decay: bool) -> None:
    """MergedChain recomputes only the rows the parts changed: without decay that is the
    fresh merge exactly; with decay in events, rows nobody touched keep their values (as
    one model's do), and the lists served stay those of a fresh merge."""
    # Without decay nothing pruned either: equal weights at a row's cut may be kept in
    # another order by a fresh merge, whose page table is in another order.
    params: dict[str, Any] = (
        {} if decay else {"half_life": 0, "pop_half_life": 0, "max_neighbours": 10_000}
    )
    parts = [Covisitation(**partition_params(Covisitation, params, N_PARTS)) for _ in range(3)]
    chain = MergedChain(params)
    deltas = 0
    for i, (user, page, ts) in enumerate(_events(9_000, n_pages=3_000)):
        parts[_part_of(user)].learn_one(user, page, x={"ts": ts})
        if i % 300 == 299:
            state, delta = chain.update(
                {p: (m._get_params(), m.state_arrays()) for p, m in enumerate(parts)}
            )
            if delta is not None:
                deltas += 1
                assert len(delta.arrays["rows"]) < len(state.table("pages")) / 2
    assert deltas >= 10  # after the first, merges are deltas
    kept = Covisitation.from_state(params, chain.state)  # type: ignore[arg-type]
    fresh = Covisitation.from_state(
        params,
        merge_states(Covisitation, params, [(m._get_params(), m.state_arrays()) for m in parts]),
    )
    assert kept.n_events_learned == fresh.n_events_learned == 9_000
    if not decay:
        assert kept._popularity._counts == pytest.approx(fresh._popularity._counts)
        assert _rows(kept) == {s: pytest.approx(r) for s, r in _rows(fresh).items()}
    same = 0
    for history in (["p1"], ["p3", "p10"], ["p40", "p2", "p7"], ["p5"], ["p90", "p11"]):
        a = [p for p, _ in kept.recommend("x", 10, history, set())]
        b = [p for p, _ in fresh.recommend("x", 10, history, set())]
        same += len(set(a) & set(b))
    assert same >= (50 if not decay else 40)
