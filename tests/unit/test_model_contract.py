"""One contract, every built-in model: ours (online_model.checks) and River's own checks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from river import checks as river_checks

from online_model.base import Recommender
from online_model.checks import yield_checks
from online_model.errors import SnapshotFormatError
from online_model.persist.pickles import is_allowed_global, restricted_loads
from online_model.registry import MODELS, make_model


def _cases(yield_from: Callable[[Recommender], Any]) -> list[Any]:
    cases = []
    for name in sorted(MODELS):
        model = make_model(name, {"seed": "3"})
        for check in yield_from(model):
            cases.append(pytest.param(model, check, id=f"{name}:{check.__name__}"))
    return cases


@pytest.mark.parametrize(("model", "check"), _cases(yield_checks))
def test_streamrec_contract(model: Recommender, check: Callable[[Recommender], None]) -> None:
    check(model.clone())


@pytest.mark.parametrize(("model", "check"), _cases(river_checks.yield_checks))
def test_river_checks(model: Recommender, check: Callable[[Recommender], None]) -> None:
    """River users get River rankers: River's own estimator checks pass."""
    check(model.clone())


def test_allow_list_refuses_code_execution() -> None:
    evil = b"cos\nsystem\n(S'echo pwned'\ntR."
    with pytest.raises(SnapshotFormatError):
        restricted_loads(evil)
    assert not is_allowed_global("builtins", "eval")
