"""Weighted blend of recommenders, with popularity filling the gaps."""

from __future__ import annotations

import heapq
import logging
from collections.abc import Collection, Hashable, Sequence
from operator import itemgetter
from typing import Any, ClassVar

from online_model.base import Recommender, Reward
from online_model.errors import ModelError
from online_model.models.covisit import Covisitation
from online_model.models.factorization import ImplicitMF
from online_model.models.forgetting import can_forget
from online_model.models.popularity import DecayedPopularity
from online_model.state import (
    ModelState,
    StateNotExportable,
    class_name,
    exports_state,
    json_params,
    registered_class,
    stores_state,
)

logger = logging.getLogger(__name__)


def default_members(seed: int | None) -> list[tuple[Recommender, float]]:
    """Members when none are given: sequential co-visitation (weight 1.0) plus matrix
    factorisation (0.2); as the spec ``covisit:1.0,mf:0.2`` gives them."""
    return [(Covisitation(seed=seed), 1.0), (ImplicitMF(seed=seed), 0.2)]


@stores_state
class Blend(Recommender):
    """Weighted sum of member scores, each scaled so its best candidate scores 1.

    Every member proposes ``k * oversample`` candidates; a candidate's blended score is
    ``sum(weight * score / best_score_of_member)``. Decayed popularity (weight
    ``popularity_weight``) breaks ties and fills the list when members run dry. All
    members learn every event. Memory is the sum of the members'.

    Parameters
    ----------
    models
        ``(model, weight)`` pairs (models are cloned, so templates are not mutated); None
        for :func:`default_members`. A spec string ``"name:weight,name:weight"`` of
        registry names is read by :func:`online_model.registry.make_model`
        (``make_model("blend", {"models": "covisit:1.0,popularity:0.1"})``), which
        builds the pairs.
    popularity_weight
        Weight of the decayed-popularity backoff.
    popularity_half_life
        Half-life (events) of that backoff.
    oversample
        Candidates per member, as a multiple of ``k``.
    seed
        Passed to the default members.

    Examples
    --------
    >>> model = Blend([(Covisitation(), 1.0), (DecayedPopularity(), 0.1)])
    >>> for user in ["u1", "u2"]:
    ...     for page in ["home", "news", "sport"]:
    ...         model.learn_one(user, page)
    >>> [page for page, _ in model.recommend("u9", k=2, history=["news"], exclude={"home"})]
    ['sport', 'news']
    """

    #: The name files record for this class (:mod:`online_model.state.registration`).
    STORED_AS: ClassVar[str] = "online_model.blend.Blend"

    def __init__(
        self,
        models: Sequence[tuple[Recommender, float]] | None = None,
        popularity_weight: float = 0.01,
        popularity_half_life: float = 20_000,
        oversample: int = 3,
        seed: int | None = 42,
    ) -> None:
        self.models = models
        self.popularity_weight = popularity_weight
        self.popularity_half_life = popularity_half_life
        self.oversample = oversample
        self.seed = seed
        self.n_events_learned = 0
        self._members = self._build_members(models, seed)
        self._popularity = DecayedPopularity(half_life=popularity_half_life)

    @staticmethod
    def _build_members(
        models: Sequence[tuple[Recommender, float]] | None, seed: int | None
    ) -> list[tuple[Recommender, float]]:
        if isinstance(models, str):
            raise ModelError(
                "Blend takes (model, weight) pairs; a spec string such as "
                f"{models!r} is read by make_model('blend', {{'models': ...}})"
            )
        if models is None:
            members = default_members(seed)
        else:
            members = [(m.clone(), float(w)) for m, w in models]
        if not members:
            raise ModelError("a blend needs at least one member")
        return members

    @property
    def n_items(self) -> int:
        return self._popularity.n_items

    # -- pickle-free state (online_model.state) ------------------------------------
    def state_arrays(self) -> ModelState:
        """Each member's own state under ``member<i>``, its class, parameters and weight
        in ``values["members"]``, and the popularity backoff under ``popularity``."""
        state = ModelState(values={"n_events_learned": self.n_events_learned, "members": []})
        for i, (member, weight) in enumerate(self._members):
            if not exports_state(member):
                raise StateNotExportable(
                    f"blend member {type(member).__name__} has no pickle-free state"
                )
            state.values["members"].append(
                {
                    "class": class_name(type(member)),
                    "params": json_params(member),
                    "weight": weight,
                }
            )
            state.nest(f"member{i}", member.state_arrays())  # type: ignore[attr-defined]
        state.nest("popularity", self._popularity.state_arrays())
        return state

    @classmethod
    def from_state(cls, params: dict[str, Any], state: ModelState) -> Blend:
        """Inverse of :meth:`state_arrays`."""
        entries = state.values["members"]
        members: list[tuple[Recommender, float]] = []
        for i, entry in enumerate(entries):
            member_cls = registered_class(entry["class"])
            if member_cls is None:
                raise ModelError(f"blend member class {entry['class']!r} is not known")
            member = member_cls.from_state(entry["params"], state.sub(f"member{i}"))  # type: ignore[attr-defined]
            members.append((member, float(entry["weight"])))
        models = params.get("models")
        if models is not None:
            # Templates of the same classes and parameters, which is all that clone() reads
            # from them (files of earlier releases may hold a spec string here instead).
            models = [(m.clone(), w) for m, w in members]
        model = cls(**{**params, "models": models})
        if [type(m) for m, _ in model._members] != [type(m) for m, _ in members]:
            raise ModelError("blend state: members do not match the blend's parameters")
        model._members = members
        model._popularity.restore(state.sub("popularity"))
        model.n_events_learned = int(state.values["n_events_learned"])
        return model

    def user_history(self, user: Hashable) -> Sequence[Hashable]:
        for member, _ in self._members:
            hist = member.user_history(user)
            if hist:
                return hist
        return ()

    def learn_one(
        self,
        user: Hashable,
        item: Hashable,
        y: Reward | None = None,
        x: dict[str, Any] | None = None,
    ) -> None:
        for member, _ in self._members:
            member.learn_one(user, item, y, x)
        self._popularity.learn_one(user, item, y, x)
        self.n_events_learned += 1

    @property
    def forgets_pages(self) -> bool:
        """Whether every member can forget pages (:mod:`online_model.models.forgetting`): the
        default blend's ``mf`` member cannot."""
        return all(can_forget(member) for member, _ in self._members)

    def forget(self, pages: Collection[Hashable]) -> int:
        """Forget ``pages`` in every member and in the popularity backoff; returns how
        many the backoff knew. Only when :attr:`forgets_pages` (else ModelError: a member
        would keep recommending them)."""
        if not self.forgets_pages:
            raise ModelError("a member of this blend cannot forget pages")
        for member, _ in self._members:
            member.forget(pages)  # type: ignore[attr-defined]
        return self._popularity.forget(pages)

    def _recommend(
        self, user: Hashable, k: int, history: Sequence[Hashable], exclude: Collection[Hashable]
    ) -> list[tuple[Hashable, float]]:
        scores: dict[Hashable, float] = {}
        get = scores.get
        n_candidates = k * self.oversample
        for member, weight in self._members:
            recs = member._recommend(user, n_candidates, history, exclude)
            if not recs:
                continue
            best = recs[0][1]
            scale = weight / best if best > 0 else 0.0
            for item, s in recs:
                scores[item] = get(item, 0.0) + s * scale
        pw = self.popularity_weight
        top_share = None
        for item, share in self._popularity._recommend(user, k, history, exclude):
            if top_share is None:
                top_share = share or 1.0
            scores[item] = get(item, 0.0) + pw * share / top_share
        return heapq.nlargest(k, scores.items(), key=itemgetter(1))
