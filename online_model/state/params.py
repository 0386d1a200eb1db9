"""A model's constructor parameters as JSON values, and the canonical JSON bytes.

Files record a model's parameters beside its state (:mod:`online_model.state.arrays`);
a nested model (a blend's member, a River estimator) is written as its class name
(:func:`~online_model.state.registration.class_name`) and its own parameters.
"""

from __future__ import annotations

import json
from typing import Any

from river import base as river_base

from online_model.state.arrays import StateNotExportable
from online_model.state.registration import class_name


def canonical_json(value: Any) -> bytes:
    """The one byte form of ``value`` that is hashed and signed: sorted keys, no spaces."""
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode("utf-8")


def json_params(model: Any) -> dict[str, Any]:
    """``model``'s constructor parameters as JSON values (nested models as class+params).

    Raises
    ------
    StateNotExportable
        A parameter is neither a JSON value nor a model.
    """
    return {name: _json_param(name, value) for name, value in model._get_params().items()}


def _json_param(name: str, value: Any) -> Any:
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, river_base.Base):
        return {"class": class_name(type(value)), "params": json_params(value)}
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], type):
        # River's own spelling of a nested estimator: (class, its parameters).
        params = {k: _json_param(k, v) for k, v in value[1].items()}
        return {"class": class_name(value[0]), "params": params}
    if isinstance(value, (list, tuple)):
        return [_json_param(name, v) for v in value]
    raise StateNotExportable(f"parameter {name}={value!r} is not a JSON value")
