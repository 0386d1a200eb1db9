"""Models that rank only the pages a filter keeps (``recommend_where``): the same lists
as ranking everything and filtering after, at the cost of a plain list."""

from __future__ import annotations

import random
from collections.abc import Hashable

import pytest

from online_model.catalog import MODEL_FILTER_SHARE, Catalog, recommend_eligible
from online_model.models.covisit import Covisitation
from online_model.models.popularity import DecayedPopularity

#: More pages than popularity's top list (256): some lists need the pool.
N_PAGES = 1_000


def trained(
    model_class: type, n_pages: int = N_PAGES, n_events: int = 6_000, seed: int = 3
) -> object:
    rng = random.Random(seed)
    model = model_class()
    for n in range(n_events):
        # Skewed pages, short sessions: rows, links and a popularity tail past the top list.
        page = (
            f"p{min(int(rng.paretovariate(0.8)), n_pages - 1)}"
            if n % 3
            else f"p{rng.randrange(n_pages)}"
        )
        model.learn_one(f"u{rng.randrange(200)}", page, x={"ts": n})
    return model


def reference(model: object, k: int, history: list[str], exclude: set[str], keep) -> list:
    everything = model.recommend("x", 10**6, history=history, exclude=exclude)  # type: ignore[attr-defined]
    return [(page, score) for page, score in everything if keep(page)][:k]


def frozen_covisitation() -> Covisitation:
    model = trained(Covisitation)
    return Covisitation.from_state(model._get_params(), model.state_arrays())  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "build",
    [lambda: trained(Covisitation), frozen_covisitation, lambda: trained(DecayedPopularity)],
    ids=["covisit", "covisit-from-snapshot", "popularity"],
)
@pytest.mark.parametrize("share", [0.02, 0.1, 0.5])
def test_recommend_where_is_recommend_filtered(build, share: float) -> None:
    model = build()
    rng = random.Random(int(share * 100))
    pages = [f"p{i}" for i in range(N_PAGES)]
    for trial in range(30):
        allowed = {p for p in pages if rng.random() < share}
        history = rng.sample(pages, 5)
        exclude = set(history) | set(rng.sample(pages, 3))
        # Half the lists through ``among`` (a category's pages), half through ``keep``.
        among, keep = (allowed, None) if trial % 2 else (None, allowed.__contains__)
        got = model.recommend_where("x", 10, history, exclude, among, keep)
        want = reference(model, 10, history, exclude, allowed.__contains__)
        assert [page for page, _ in got] == [page for page, _ in want]
        assert [score for _, score in got] == pytest.approx([score for _, score in want])


class Hidden:
    """The same model without ``recommend_where``: filtered by over-fetching."""

    def __init__(self, model: object) -> None:
        self.model = model

    def recommend(self, user: Hashable, k: int, history: object, exclude: object) -> list:
        return self.model.recommend(user, k, history=history, exclude=exclude)  # type: ignore[attr-defined]


def test_a_category_rule_gives_the_lists_of_over_fetching_without_ranking_every_page() -> None:
    model = frozen_covisitation()
    catalog = Catalog()
    for i in range(N_PAGES):
        catalog.apply(f"p{i}", {"page_id": f"p{i}", "categories": [f"c{i % 10}"]})
    assert catalog.eligible_share(frozenset({"c3"})) < MODEL_FILTER_SHARE
    calls: list[int] = []
    original = model.recommend
    model.recommend = lambda *a, **kw: calls.append(1) or original(*a, **kw)  # type: ignore[method-assign]
    rng = random.Random(5)
    for n in range(40):
        history = [f"p{rng.randrange(N_PAGES)}" for _ in range(4)]
        rule = frozenset({f"c{n % 10}"})
        got = recommend_eligible(model, "x", 10, history, set(history), catalog, 0, categories=rule)
        assert not calls  # the model was handed the rule, not asked for a long plain list
        want = recommend_eligible(
            Hidden(model), "x", 10, history, set(history), catalog, 0, categories=rule
        )
        calls.clear()
        assert [p for p, _ in got] == [p for p, _ in want]
        assert len(got) == 10


def test_most_pages_hidden_is_filtered_in_the_model_too() -> None:
    model = trained(DecayedPopularity)
    catalog = Catalog()
    for i in range(N_PAGES):
        if i % 10:
            catalog.apply(f"p{i}", {"page_id": f"p{i}", "available": False})
    got = recommend_eligible(model, "x", 10, [], set(), catalog, 0)
    want = recommend_eligible(Hidden(model), "x", 10, [], set(), catalog, 0)
    assert got == want and len(got) == 10
    assert all(int(page[1:]) % 10 == 0 for page, _ in got)


def test_several_categories_follow_catalog_changes() -> None:
    model = trained(DecayedPopularity)
    catalog = Catalog()
    for i in range(N_PAGES):
        catalog.apply(f"p{i}", {"page_id": f"p{i}", "categories": [f"c{i % 20}"]})
    rule = frozenset({"c1", "c2"})
    first = recommend_eligible(model, "x", 10, [], set(), catalog, 0, categories=rule)
    assert first == recommend_eligible(
        Hidden(model), "x", 10, [], set(), catalog, 0, categories=rule
    )
    assert {int(page[1:]) % 20 for page, _ in first} <= {1, 2}
    top = first[0][0]
    catalog.apply(top, {"page_id": top, "categories": ["c3"]})  # moved out of the rule
    second = recommend_eligible(model, "x", 10, [], set(), catalog, 0, categories=rule)
    assert top not in {page for page, _ in second} and second[:9] == first[1:]
