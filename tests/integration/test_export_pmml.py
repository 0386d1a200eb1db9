"""``streamrec models export VERSION --format pmml``: a real PMML engine (JPMML-Evaluator,
through the ``jpmml-evaluator`` package and a JVM) scores the exported file, and its top
rules for a page are the model's own strongest transitions, with the same P(next | page).
The version exported is a delta, so the export also shows delta versions materialise."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from online_model.models.covisit import Covisitation
from online_model.models.popularity import DecayedPopularity
from online_model.persist.snapshot import Snapshot, SnapshotMeta
from streams.cli import main
from streams.scorer.runtime import snapshot_store
from streams.settings import Settings

TOP_N = 4


def export(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(main, ["models", "export", *args], env=env, catch_exceptions=False)


def pmml_top_rules(path: Path, pages: list[str]) -> dict[str, list[tuple[str, float]]]:
    """Each page, alone as the input itemset, scored by JPMML: (consequent, confidence)
    of the rules it ranks 1..TOP_N."""
    from jpmml_evaluator import make_evaluator
    from jpype import JClass

    evaluator = make_evaluator(str(path), backend="jpype").verify()
    hash_map, array_list = JClass("java.util.HashMap"), JClass("java.util.ArrayList")
    out = {}
    for page in pages:
        items = array_list()
        items.add(page)
        arguments = hash_map()
        arguments.put("page", items)
        results: Any = evaluator.javaEvaluator.evaluate(arguments)
        ranked = []
        for rank in range(1, TOP_N + 1):
            consequent = results.get(f"next_{rank}")
            if consequent is None:
                break
            (page_id,) = [str(item) for item in consequent]  # one-page itemsets
            ranked.append((page_id, float(str(results.get(f"confidence_{rank}")))))
        out[page] = ranked
    return out


def test_pmml_export_scores_like_the_model_in_a_real_engine(
    settings: Settings, settings_env: dict[str, str], tmp_path: Path
) -> None:
    store = snapshot_store(settings)
    rng = random.Random(8)
    model = Covisitation()
    for _ in range(3_000):
        model.learn_one(f"u{rng.randrange(200)}", f"page {rng.randrange(60)} & more")
    base = store.publish_full(Snapshot(SnapshotMeta("ignored"), model))
    model.mark_published()
    for _ in range(200):
        model.learn_one(f"u{rng.randrange(200)}", f"page {rng.randrange(70)} & more")
    delta = store.publish_delta(SnapshotMeta("ignored"), model, model.state_delta(), base, {})  # type: ignore[arg-type]

    out = tmp_path / "model.pmml"
    done = export(
        settings_env,
        str(delta.version),
        "--format",
        "pmml",
        "--top-n",
        str(TOP_N),
        "--output",
        str(out),
    )
    assert done.exit_code == 0, done.output
    assert out.read_bytes().startswith(b"<?xml") and b'version="4.4"' in out.read_bytes()

    # Ours: the transitions the model serves a page's successors from, strongest first.
    # Checked on pages whose confidences there are distinct (an engine orders ties as it
    # likes).
    ours = {page: model._top_transitions(page)[:TOP_N] for page in sorted(model._neighbours)}

    def distinct(page: str) -> bool:
        head = [p for _, p in model._top_transitions(page)[: TOP_N + 1]]
        return len(set(head)) == len(head)

    checked = [page for page in ours if distinct(page)][:12]
    assert len(checked) >= 5
    engine = pmml_top_rules(out, [*checked, "a page nobody viewed"])
    for page in checked:
        assert [p for p, _ in engine[page]] == [p for p, _ in ours[page]], page
        for (_, theirs), (_, mine) in zip(engine[page], ours[page], strict=True):
            assert abs(theirs - mine) <= 1e-12 * mine, page
    assert engine["a page nobody viewed"] == []


def test_pmml_export_of_another_model_is_an_error(
    settings: Settings, settings_env: dict[str, str], tmp_path: Path
) -> None:
    store = snapshot_store(settings)
    model = DecayedPopularity()
    model.learn_one("u", "p")
    version = store.publish(Snapshot(SnapshotMeta("ignored"), model))
    out = tmp_path / "model.pmml"
    refused = export(settings_env, str(version), "--format", "pmml", "--output", str(out))
    assert refused.exit_code == 2
    assert "error: cannot export version" in refused.stderr
    assert "co-visitation" in refused.stderr and not out.exists()
