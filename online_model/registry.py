"""Model names, construction from ``key=value`` strings, and the pickle allow-list.

``make_model("covisit", {"window": "3"})`` builds a built-in; a dotted path
``package.module:Class`` (or ``package.module.Class``) builds any River-compatible class;
one that is not a :class:`Recommender` is wrapped in
:class:`~online_model.models.adapter.RiverRanker`.
String parameters are coerced to the type of the constructor's default (or annotation).
"""

from __future__ import annotations

import importlib
import inspect
import logging
from collections.abc import Mapping
from typing import Any

from online_model.base import Recommender
from online_model.errors import ModelError
from online_model.models.adapter import RiverRanker
from online_model.models.blend import Blend
from online_model.models.covisit import Covisitation
from online_model.models.ensemble import Ensemble
from online_model.models.factorization import ImplicitMF
from online_model.models.hybrid import Hybrid
from online_model.models.popularity import DecayedPopularity

logger = logging.getLogger(__name__)

MODELS: dict[str, type[Recommender]] = {
    "popularity": DecayedPopularity,
    "covisit": Covisitation,
    "mf": ImplicitMF,
    "blend": Blend,
    "hybrid": Hybrid,
    "ensemble": Ensemble,
}

#: Chosen by prequential measurement (bench/MODELS.md): best geometric-mean hit@10 and
#: MRR@10 of the built-ins across the stand-in worlds of bench/worlds.py (MovieLens-,
#: e-commerce-session-, news- and Last.fm-like logs plus our generator), and never worse
#: than popularity on any of them, with a cheap learn_one and recommend.
DEFAULT_MODEL = "covisit"


def model_names() -> list[str]:
    """Built-in model names, the default first."""
    return [DEFAULT_MODEL, *sorted(n for n in MODELS if n != DEFAULT_MODEL)]


def resolve(name: str) -> type:
    """Class for a built-in ``name``, ``"default"``, or a dotted path to any class."""
    if name in ("default", ""):
        name = DEFAULT_MODEL
    if name in MODELS:
        return MODELS[name]
    if ":" in name:
        module_name, _, attr = name.partition(":")
    elif "." in name:
        module_name, _, attr = name.rpartition(".")
    else:
        raise ModelError(f"unknown model {name!r}; built-ins: {', '.join(model_names())}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelError(f"cannot import module {module_name!r} for model {name!r}") from exc
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise ModelError(f"{module_name!r} has no attribute {attr!r}") from exc
    if not inspect.isclass(obj):
        raise ModelError(f"{name!r} is not a class")
    if not all(hasattr(obj, m) for m in ("learn_one", "predict_one")):
        raise ModelError(f"{name!r} does not speak River's learn_one/predict_one")
    return obj


def _target_type(param: inspect.Parameter) -> type | None:
    """The scalar type a parameter wants: its annotation if simple, else its default's."""
    ann = param.annotation
    if isinstance(ann, str):
        kinds = {a.strip() for a in ann.split("|")} - {"None"}
        for t in (bool, int, float, str):
            if kinds == {t.__name__}:
                return t
        if kinds == {"int", "float"}:
            return float
    elif ann in (bool, int, float, str):
        return ann
    default = param.default
    if default is inspect.Parameter.empty or default is None:
        return None
    return type(default) if type(default) in (bool, int, float, str) else None


def _coerce(value: Any, param: inspect.Parameter, name: str) -> Any:
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.lower() in ("none", "null") and (
        param.default is None or "None" in str(param.annotation)
    ):
        return None
    target = _target_type(param)
    try:
        if target is bool:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if target is int:
            f = float(text)
            if f != int(f):
                raise ValueError(text)
            return int(f)
        if target is float:
            return float(text)
    except ValueError as exc:
        expected = getattr(target, "__name__", str(target))
        raise ModelError(f"parameter {name}={value!r}: expected {expected}") from exc
    return value


def blend_members(spec: str, seed: Any = 42) -> list[tuple[Recommender, float]]:
    """``"covisit:1.0,mf:0.2"`` -> ``[(Covisitation(seed=...), 1.0), (ImplicitMF(...), 0.2)]``.

    >>> [(type(m).__name__, w) for m, w in blend_members("covisit:1,popularity:0.1")]
    [('Covisitation', 1.0), ('DecayedPopularity', 0.1)]
    """
    members = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, weight = part.partition(":")
        try:
            w = float(weight) if weight else 1.0
        except ValueError as exc:
            raise ModelError(f"blend member {part!r}: weight is not a number") from exc
        members.append((make_model(name.strip(), {"seed": seed}), w))
    if not members:
        raise ModelError("a blend needs at least one member")
    return members


def make_model(name: str, params: Mapping[str, Any] | None = None) -> Recommender:
    """Build model ``name`` (built-in or dotted path) with ``params`` coerced to its types.

    Raises
    ------
    ModelError
        Unknown name, unknown parameter, or a value of the wrong type.

    Examples
    --------
    >>> make_model("covisit", {"window": "3"}).window
    3
    >>> popularity = "online_model.models.popularity:DecayedPopularity"
    >>> make_model(popularity, {"half_life": "50"}).half_life
    50.0
    """
    cls = resolve(name)
    params = dict(params or {})
    if cls is Blend and isinstance(params.get("models"), str):
        # The registry reads a blend's spec: Blend itself only takes (model, weight) pairs.
        params["models"] = blend_members(params["models"], params.get("seed", 42))
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"cannot inspect the constructor of {name!r}") from exc
    accepted = {n: p for n, p in signature.parameters.items() if n != "self"}
    takes_kwargs = any(p.kind == p.VAR_KEYWORD for p in accepted.values())
    kwargs: dict[str, Any] = {}
    for key, value in (params or {}).items():
        if key not in accepted:
            if key == "seed":
                continue  # a seed is offered to every model; not all take one
            if not takes_kwargs:
                raise ModelError(
                    f"model {name!r} has no parameter {key!r}; "
                    f"accepted: {', '.join(n for n in accepted if not n.startswith('_'))}"
                )
            kwargs[key] = value
            continue
        kwargs[key] = _coerce(value, accepted[key], key)
    try:
        model = cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"cannot build {name!r} with {kwargs}: {exc}") from exc
    if not isinstance(model, Recommender):
        # A plain River ranker: give it recommend() (slow, O(items) predict_one calls).
        model = RiverRanker(model)
    return model
