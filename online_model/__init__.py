"""Model-facing half of streamrec: online recommenders, evaluation and model files.

Nothing in this package imports a Kafka client. The public names below are importable
from here (loaded on first use, so ``import online_model.errors`` stays cheap); the rooms:

* ``errors``, ``base`` - the exception root and the recommender contract
* ``state/`` - how a model's state is laid out (arrays, parameters, class registration)
* ``models/`` - the recommenders (popularity, covisit, mf, itemitem, hybrid, blend, ...)
* ``catalog/`` - which pages may be served, fresh pages
* ``registry`` - model names and ``make_model``
* ``persist/`` - the signed snapshot format, deltas, batch-layer files, pickles
* ``export/`` - PMML
* ``evaluation``, ``quality``, ``checks``, ``data/`` - prequential evaluation, the
  model contract, event files and generated logs
"""

from __future__ import annotations

import importlib
from typing import Any

#: name -> the module that defines it
_EXPORTS = {
    "Recommender": "online_model.base",
    "StreamrecError": "online_model.errors",
    "ModelError": "online_model.errors",
    "ModelState": "online_model.state",
    "stores_state": "online_model.state",
    "Blend": "online_model.models",
    "Covisitation": "online_model.models",
    "DecayedPopularity": "online_model.models",
    "Hybrid": "online_model.models",
    "ImplicitMF": "online_model.models",
    "ItemItem": "online_model.models",
    "RiverRanker": "online_model.models",
    "Catalog": "online_model.catalog",
    "Rules": "online_model.catalog",
    "MODELS": "online_model.registry",
    "make_model": "online_model.registry",
    "Snapshot": "online_model.persist.snapshot",
    "SnapshotMeta": "online_model.persist.snapshot",
    "dump_snapshot": "online_model.persist.snapshot",
    "load_snapshot": "online_model.persist.snapshot",
    "evaluate": "online_model.evaluation",
    "check_recommender": "online_model.checks",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'online_model' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
