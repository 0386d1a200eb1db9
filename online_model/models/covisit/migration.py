"""Pickles of co-visitation models written by earlier releases, upgraded on load.

A pickle holds the model's ``__dict__`` (less the derived serving state); the class is
found under the module that ``online_model.persist.pickles.MOVED_MODULES`` maps the
old ``online_model.covisit`` to. :func:`upgrade_state` brings such a ``__dict__`` to
the attributes the current code expects, before ``__setstate__`` installs it.
"""

from __future__ import annotations

import copy
from typing import Any


def upgrade_state(state: dict[str, Any]) -> None:
    """Upgrade a pickled ``__dict__`` in place (a current one is left as it is)."""
    if "_mixture" not in state:
        # A snapshot from before the adaptive mixture: popularity shared the link
        # clock and had a fixed weight; keep serving it that way.
        state.update(pop_half_life=None, backoff_rate=0.0, _mixture=state["backoff"])
        state["_popularity"]._clock = copy.deepcopy(state["_clock"])
