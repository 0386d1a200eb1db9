"""Co-visitation transitions as a PMML 4.4 ``AssociationModel``, for other scoring engines.

Each page with successors becomes up to ``top_n`` rules ``page -> next page`` with
``confidence = P(next | page)`` (the transition weight over the page's total outgoing
weight, the probability the model serves) and ``support`` = the transition's share of all
transition weight. Rules are those the model would consider first: the strongest
successors by weight. The input is transactional: a ``visit`` (group) field and a
``page`` field, the pages viewed in that visit (engines also take them as one
collection); ``next_<r>`` and ``confidence_<r>`` give the ``r``-th best rule's
consequent and confidence (``algorithm="recommendation"``, ranked by confidence). With
a single page as input, that is that page's top transitions.

Popularity, the learned mixture weight and the averaging over the last pages of a
history are not part of the export: an association model has no place for them.

>>> from online_model.models.covisit import Covisitation
>>> model = Covisitation()
>>> for user in ("a", "b", "c"):
...     for page in ("home", "news", "sports"):
...         model.learn_one(user, page)
>>> text = covisit_pmml(model, top_n=2).decode()
>>> '<AssociationRule antecedent="1" consequent="2"' in text, text.count("<AssociationRule ")
(True, 6)
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import numpy as np

from online_model.errors import ModelError
from online_model.models.covisit import Covisitation

NAMESPACE = "http://www.dmg.org/PMML-4_4"


def top_rules(state: Any, top_n: int) -> list[tuple[int, list[tuple[int, float, float]]]]:
    """For each page row with successors: its ``top_n`` strongest successors as
    ``(successor row, confidence, weight)``, strongest first (ties: first linked first,
    the order the model ranks them in)."""
    indptr = state.array("neighbours.indptr", np.int64).tolist()
    dst = state.array("neighbours.page", np.int32)
    weight = state.array("neighbours.weight", np.float64)
    out = state.array("out", np.float64)
    rules = []
    for i in range(len(indptr) - 1):
        a, b = indptr[i], indptr[i + 1]
        if a == b:
            continue
        row = weight[a:b]
        top = np.argsort(-row, kind="stable")[:top_n]
        conf = row[top] * (1.0 / float(out[i]))
        picked = zip(dst[a:b][top].tolist(), conf.tolist(), row[top].tolist(), strict=True)
        rules.append((i, list(picked)))
    return rules


def covisit_pmml(model: Any, top_n: int = 10, description: str = "") -> bytes:
    """``model`` (a :class:`~online_model.models.covisit.Covisitation`) as PMML 4.4 (UTF-8 XML).

    Raises
    ------
    ModelError
        ``model`` is not a co-visitation model, or ``top_n`` < 1.
    """
    if not isinstance(model, Covisitation):
        raise ModelError(
            f"PMML export writes co-visitation transitions, not a {type(model).__name__}"
        )
    if top_n < 1:
        raise ModelError(f"top_n must be at least 1, got {top_n}")
    state = model.state_arrays()
    pages = state.table("pages")
    rules = top_rules(state, top_n)
    total = float(state.array("out", np.float64).sum()) or 1.0
    used = sorted({i for i, _ in rules} | {j for _, rs in rules for j, _, _ in rs})
    item_id = {row: str(n) for n, row in enumerate(used, 1)}
    n_rules = sum(len(rs) for _, rs in rules)
    confidences = [c for _, rs in rules for _, c, _ in rs] or [0.0]
    supports = [w / total for _, rs in rules for _, _, w in rs] or [0.0]

    pmml = ET.Element("PMML", {"xmlns": NAMESPACE, "version": "4.4"})
    ET.SubElement(
        pmml,
        "Header",
        {"description": description or "streamrec co-visitation transitions"},
    )
    # Transactional input: a group field (one visit) and the pages viewed in it.
    dictionary = ET.SubElement(pmml, "DataDictionary", {"numberOfFields": "2"})
    for name in ("visit", "page"):
        ET.SubElement(
            dictionary, "DataField", {"name": name, "optype": "categorical", "dataType": "string"}
        )
    association = ET.SubElement(
        pmml,
        "AssociationModel",
        {
            "functionName": "associationRules",
            "modelName": "streamrec-covisit",
            "numberOfTransactions": str(max(1, int(model.n_events_learned))),
            "minimumSupport": repr(min(supports)),
            "minimumConfidence": repr(min(confidences)),
            "numberOfItems": str(len(used)),
            "numberOfItemsets": str(len(used)),
            "numberOfRules": str(n_rules),
        },
    )
    schema = ET.SubElement(association, "MiningSchema")
    ET.SubElement(schema, "MiningField", {"name": "visit", "usageType": "group"})
    ET.SubElement(schema, "MiningField", {"name": "page", "usageType": "active"})
    output = ET.SubElement(association, "Output")
    for rank in range(1, top_n + 1):
        for name, feature, optype, dtype in (
            ("next", "consequent", "categorical", "string"),
            ("confidence", "confidence", "continuous", "double"),
        ):
            ET.SubElement(
                output,
                "OutputField",
                {
                    "name": f"{name}_{rank}",
                    "optype": optype,
                    "dataType": dtype,
                    "feature": "ruleValue",
                    "ruleFeature": feature,
                    "algorithm": "recommendation",
                    "rankBasis": "confidence",
                    "rankOrder": "descending",
                    "rank": str(rank),
                },
            )
    for row in used:
        ET.SubElement(association, "Item", {"id": item_id[row], "value": pages[row]})
    for row in used:
        itemset = ET.SubElement(association, "Itemset", {"id": item_id[row], "numberOfItems": "1"})
        ET.SubElement(itemset, "ItemRef", {"itemRef": item_id[row]})
    for i, rs in rules:
        for j, confidence, weight in rs:
            ET.SubElement(
                association,
                "AssociationRule",
                {
                    "antecedent": item_id[i],
                    "consequent": item_id[j],
                    "support": repr(weight / total),
                    "confidence": repr(confidence),
                },
            )
    ET.indent(pmml, space=" ")
    return ET.tostring(pmml, encoding="utf-8", xml_declaration=True)
