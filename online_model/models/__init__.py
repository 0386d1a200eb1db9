"""The recommenders: each learns from page views one at a time and ranks pages.

Importing this package registers every built-in model with
:mod:`online_model.state.registration`, so files that name them can be read. Names for
the command line and ``make_model`` are in :mod:`online_model.registry`.
"""

from online_model.models.adapter import RiverRanker
from online_model.models.blend import Blend
from online_model.models.covisit import Covisitation
from online_model.models.ensemble import Ensemble
from online_model.models.factorization import ImplicitMF
from online_model.models.hybrid import Hybrid
from online_model.models.itemitem import ItemItem
from online_model.models.popularity import DecayedPopularity

__all__ = [
    "Blend",
    "Covisitation",
    "DecayedPopularity",
    "Ensemble",
    "Hybrid",
    "ImplicitMF",
    "ItemItem",
    "RiverRanker",
]
