"""Co-visitation, the default model: what users viewed next after a page.

:mod:`~online_model.models.covisit.model` learns online and serves, with one module per
concern beside it (its docstring lists them);
:mod:`~online_model.models.covisit.batch` builds the same state from a whole log at once
(the Spark retrain's counting), with :mod:`~online_model.models.covisit.pairs` for the
numpy pair statistics.
"""

from online_model.models.covisit.model import Covisitation

__all__ = ["Covisitation"]
