"""The reference recommenders do what their definitions say, and the robustness bench
runs them beside the models on the synthetic worlds and the real log."""

from __future__ import annotations

import gzip
import json

import pytest

from bench import quality, robustness
from bench.real_logs import REAL_LOGS, real_log
from bench.references import (
    REFERENCES,
    ReferenceCovisitation,
    ReferencePopularity,
    SequentialRules,
    SessionKNN,
)
from bench.worlds import WORLDS
from online_model.evaluation import evaluate
from online_model.models.popularity import DecayedPopularity


def learn(model, events) -> None:
    for user, page in events:
        model.learn_one(user, page)


def pages(recs) -> list:
    return [page for page, _ in recs]


def test_popularity_ranks_by_views_so_far_ties_in_first_seen_order() -> None:
    model = ReferencePopularity()
    learn(model, [("a", "p1"), ("b", "p2"), ("c", "p3"), ("d", "p3"), ("e", "p2")])
    assert model.recommend("x", k=3) == [("p2", 2.0), ("p3", 2.0), ("p1", 1.0)]
    assert pages(model.recommend("x", k=3, exclude={"p2"})) == ["p3", "p1"]


def test_covisit_w3_weighs_successors_of_the_last_three_pages_one_half_third() -> None:
    model = ReferenceCovisitation()
    # Learning p4 after p1 p2 p3 counts p1->p4, p2->p4, p3->p4 (the last 3 pages), etc.
    learn(model, [("a", "p1"), ("a", "p2"), ("a", "p3"), ("a", "p4"), ("b", "p5"), ("c", "p5")])
    # Newest p1 (weight 1): p2 p3 p4 +1; p2 (1/2): p3 p4 +1/2; p3 (1/3): p4 +1/3.
    # p9, the 4th newest, is outside the window.
    recs = model.recommend("x", k=3, history=["p9", "p3", "p2", "p1"])
    assert pages(recs) == ["p4", "p3", "p2"]
    assert [s for _, s in recs] == pytest.approx([1 + 1 / 2 + 1 / 3, 1.5, 1.0])
    # Seen pages are excluded; popularity (p5: 2 views) fills the rest with score 0.
    recs = model.recommend("x", k=3, history=["p3", "p2", "p1"], exclude={"p1", "p2", "p3"})
    assert recs == [("p4", pytest.approx(11 / 6)), ("p5", 0.0)]


def test_sr_weighs_pairs_one_over_gap_within_steps_and_follows_the_last_page() -> None:
    model = SequentialRules()
    learn(model, [("a", "p1"), ("a", "p2"), ("a", "p3"), ("b", "p4")])
    assert model.recommend("x", k=2, history=["p2", "p1"]) == [("p2", 1.0), ("p3", 0.5)]
    # Only the last page's rules: p2 -> p3, then the most viewed pages fill in.
    assert pages(model.recommend("x", k=3, history=["p1", "p2"], exclude={"p1", "p2"})) == [
        "p3",
        "p4",
    ]
    short = SequentialRules(steps=1)
    learn(short, [("a", "p1"), ("a", "p2"), ("a", "p3")])
    assert short.recommend("x", k=2, history=["p1"], exclude={"p1"}) == [
        ("p2", 1.0),
        ("p3", 0.0),
    ]


def test_vsknn_scores_neighbours_by_the_sessions_position_weights() -> None:
    events = [("u2", "p2"), ("u2", "x2"), ("u1", "p1"), ("u1", "x1")]
    model = SessionKNN()
    learn(model, events)
    # Session [p1, p2]: p2 (newest) weighs 1, p1 1/2, so u2 (who saw p2) is the nearer
    # neighbour: x2 scores 1, x1 scores 1/2.
    assert model.recommend("x", k=2, history=["p1", "p2"], exclude={"p1", "p2"}) == [
        ("x2", 1.0),
        ("x1", 0.5),
    ]
    # Only the `sample` most recently active candidates are neighbours: u1 learned last.
    one = SessionKNN(sample=1)
    learn(one, events)
    assert pages(one.recommend("x", k=2, history=["p1", "p2"], exclude={"p1", "p2"})) == [
        "x1",
        "x2",  # popularity fill
    ]
    assert one.recommend("x", k=1, history=["p1", "p2"], exclude={"p1", "p2"})[0][1] == 0.5


def test_references_run_under_the_evaluate_protocol() -> None:
    # The hand-worked log of test_evaluate: popularity without decay scores 4 of 6.
    log = [("a", "p1", 1), ("b", "p1", 2), ("a", "p2", 3), ("c", "p2", 4), ("b", "p2", 5)]
    log += [("a", "p3", 6), ("c", "p1", 7), ("b", "p3", 8), ("d", "p4", 9), ("c", "p4", 10)]
    ours = evaluate(DecayedPopularity(half_life=0), log, k=2)
    ref = evaluate(ReferencePopularity(), log, k=2)
    assert (ref["n_scored"], ref["hit@2"], ref["mrr@2"]) == (6, 4 / 6, 3.5 / 6)
    assert (ref["hit@2"], ref["mrr@2"]) == (ours["hit@2"], ours["mrr@2"])
    for cls in REFERENCES.values():
        report = evaluate(cls(), log, k=2)
        assert report["n_events"] == 10 and report["n_scored"] == 6


def test_robustness_runs_the_real_log_beside_the_synthetic_worlds() -> None:
    assert "retail" in REAL_LOGS
    assert [*WORLDS, *REAL_LOGS] == robustness.ALL_WORLDS
    assert len(real_log("retail").events) == 386_326  # the whole log by default
    candidates = [c for c in robustness.CANDIDATES if c[0] in ("default", "popularity")]
    candidates += robustness.REFERENCE_CANDIDATES
    reports = robustness.run(candidates, ["generator", "retail"], scale=0.05, max_events=1_500)
    assert [r["world"] for r in reports] == ["generator"] * 6 + ["retail"] * 6
    retail = {r["label"]: r for r in reports if r["world"] == "retail"}
    assert set(retail) == {"default", "popularity"} | {f"ref:{n}" for n in REFERENCES}
    assert all(r["n_events"] == 1_500 for r in retail.values())
    best = max(r["hit@10"] for label, r in retail.items() if label.startswith("ref:"))
    summary = robustness.summarise(reports)
    ratio = summary["default"]["ratio_vs_best_reference"]["retail"]
    assert ratio == pytest.approx(retail["default"]["hit@10"] / best)
    meta = {"scale": 0.05, "max_events": 1_500, "default_model": "covisit"}
    meta |= {"best_reference": robustness.best_references(reports)}
    meta |= {"world_stats": {w: {"n_events": 1_500} for w in ("generator", "retail")}}
    meta |= {"mimics": {"generator": "streamrec generate", "retail": "Online Retail"}}
    text = robustness.markdown(reports, summary, meta)
    assert "| retail | ref:" in text and "| **worst (world)** |" in text


def test_quality_bench_judges_models_and_references_on_a_gzipped_log(tmp_path) -> None:
    rows = [f"u{i % 7},p{(i * 3) % 11},{1000 + i}" for i in range(300)]
    data = tmp_path / "views.csv.gz"
    data.write_bytes(gzip.compress("\n".join(["user_id,page_id,ts_ms", *rows]).encode()))
    out = tmp_path / "quality.json"
    quality.main(["--input", str(data), "--references", "--output", str(out)])
    reports = json.loads(out.read_text())["results"]
    models = [r["model"] for r in reports]
    assert "covisit" in models and "bench.references:SessionKNN" in models
    assert len(models) == len(quality.MODELS) + len(REFERENCES)
    assert all(r["n_events"] == 300 for r in reports)
