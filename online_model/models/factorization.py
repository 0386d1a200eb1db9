"""River matrix factorisation on implicit page views, with vectorised top-k."""

from __future__ import annotations

import functools
import logging
import random
from collections import OrderedDict, defaultdict
from collections.abc import Collection, Hashable, Sequence
from typing import Any, ClassVar

import numpy as np
from river import optim, reco

from online_model.base import Recommender, Reward
from online_model.errors import ModelError
from online_model.models.popularity import DecayedPopularity
from online_model.state import ModelState, id_table, stores_state

logger = logging.getLogger(__name__)

_RANDOM_BATCH = 4096


@stores_state
class ImplicitMF(Recommender):
    """River :class:`~river.reco.FunkMF` trained on views with negative sampling.

    Every view is a positive (``y=1``) for the (user, page) pair and ``n_negatives``
    pages drawn uniformly from the known pages are negatives (``y=0``). Item factors are
    mirrored into a dense matrix (only the rows that changed since the last call are
    copied), so ``recommend`` is one matrix-vector product plus ``argpartition``.

    A user the model knows is served with their own factors. Anyone else is folded in
    from ``history``: the ridge solution ``u = (V^T V + fold_in_l2 I)^-1 V^T 1`` over the
    factors ``V`` of their recent pages. With no usable history the model falls back to
    decayed popularity. User factors are kept for at most ``max_users`` users (least
    recently active evicted), so memory is O(items + max_users) x ``n_factors``.

    Parameters
    ----------
    n_factors
        Latent dimensions.
    learning_rate
        SGD step size.
    l2
        L2 regularisation of the factors.
    n_negatives
        Sampled negatives per view.
    init_std
        Standard deviation of the initial factors.
    fold_in_l2
        Ridge penalty when building a user vector from history.
    n_recent
        History pages used for the fold-in.
    max_users
        User factor vectors kept (LRU).
    user_factors
        Serve known users from their learned factors instead of folding in ``history``
        (the fold-in tracks the current session and is usually better for page views).
    popularity_half_life
        Half-life (events) of the popularity fallback.
    seed
        Seeds the factor initialisation and the negative sampling.

    Examples
    --------
    >>> model = ImplicitMF(n_factors=4, seed=1)
    >>> for _ in range(30):
    ...     for user, page in [("a", "x"), ("a", "y"), ("b", "x"), ("b", "y"), ("c", "z")]:
    ...         model.learn_one(user, page)
    >>> top = model.recommend("new", k=2, history=["x"], exclude={"x"})
    >>> [page for page, _ in top]
    ['y', 'z']
    """

    #: The name files record for this class (:mod:`online_model.state.registration`).
    STORED_AS: ClassVar[str] = "online_model.factorization.ImplicitMF"

    def __init__(
        self,
        n_factors: int = 16,
        learning_rate: float = 0.1,
        l2: float = 0.001,
        n_negatives: int = 2,
        init_std: float = 0.1,
        fold_in_l2: float = 0.1,
        n_recent: int = 5,
        max_users: int = 100_000,
        user_factors: bool = False,
        popularity_half_life: float = 20_000,
        seed: int | None = 42,
    ) -> None:
        self.n_factors = n_factors
        self.learning_rate = learning_rate
        self.l2 = l2
        self.n_negatives = n_negatives
        self.init_std = init_std
        self.fold_in_l2 = fold_in_l2
        self.n_recent = n_recent
        self.max_users = max_users
        self.user_factors = user_factors
        self.popularity_half_life = popularity_half_life
        self.seed = seed
        self.n_events_learned = 0
        self._mf = reco.FunkMF(
            n_factors=n_factors,
            optimizer=optim.SGD(learning_rate),
            loss=optim.losses.Squared(),
            l2=l2,
            initializer=optim.initializers.Normal(mu=0.0, sigma=init_std, seed=seed),
            seed=seed,
        )
        self._popularity = DecayedPopularity(half_life=popularity_half_life)
        self._users: OrderedDict[Hashable, None] = OrderedDict()
        self._items: list[Hashable] = []
        self._index: dict[Hashable, int] = {}
        self._matrix = np.zeros((0, n_factors), dtype=np.float64)
        self._dirty: set[int] = set()
        self._generator = np.random.default_rng(seed)
        self._uniform = self._generator.random(_RANDOM_BATCH)
        self._uniform_pos = 0

    @property
    def n_items(self) -> int:
        return len(self._items)

    # -- pickling: FunkMF holds defaultdicts of functools.partial and a random.Random,
    # neither of which an allow-listing unpickler should accept; store plain dicts.
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        mf_state = self._mf.__dict__.copy()
        mf_state["u_latents"] = dict(mf_state["u_latents"])
        mf_state["i_latents"] = dict(mf_state["i_latents"])
        mf_state.pop("_rng", None)
        state["_mf"] = mf_state
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        mf_state = state["_mf"]
        mf = reco.FunkMF.__new__(reco.FunkMF)
        mf.__dict__.update(mf_state)
        make = functools.partial(mf.initializer, shape=mf.n_factors)
        mf.u_latents = _factor_dict(make, mf_state["u_latents"])
        mf.i_latents = _factor_dict(make, mf_state["i_latents"])
        mf._rng = random.Random(mf.seed)  # unused by FunkMF.learn_one
        if "_rng" in state:  # written before the generator was renamed (River's Ranker owns _rng)
            state = {**state, "_generator": state.pop("_rng")}
        self.__dict__.update({**state, "_mf": mf})

    # -- pickle-free state (online_model.state) ------------------------------------
    def state_arrays(self) -> ModelState:
        """Factor matrices over the page and user tables, plus every random state.

        ``item_factors[i]`` belongs to ``pages[i]`` (first-seen order, the order negatives
        are drawn from), ``user_factors[u]`` to ``users[u]`` (least recently active
        first). The negative sampler's PCG64 state, its pre-drawn uniforms and the
        factor initialiser's MT19937 state are stored too, so a resumed trainer draws
        exactly what this one would have.
        """
        mf = self._mf
        pages = id_table(self._items, "page")
        users = id_table(self._users, "user")
        # Membership first: looking a missing id up in River's defaultdict would add it.
        if (
            len(mf.i_latents) != len(pages)
            or len(mf.u_latents) != len(users)
            or not all(p in mf.i_latents for p in pages)
            or not all(u in mf.u_latents for u in users)
        ):
            raise ModelError("factorisation state: latent vectors and id tables disagree")
        item_factors = np.array([mf.i_latents[p] for p in pages], dtype=np.float64)
        user_factors = np.array([mf.u_latents[u] for u in users], dtype=np.float64)
        rng = self._generator.bit_generator.state
        init_name, init_keys, init_pos, has_gauss, gauss = mf.initializer._rng.get_state()  # type: ignore[attr-defined]
        state = ModelState(
            values={
                "n_events_learned": self.n_events_learned,
                "uniform_pos": self._uniform_pos,
                # 128-bit integers as decimal strings: JSON readers keep them exact.
                "sampler": {
                    "bit_generator": rng["bit_generator"],
                    "state": str(rng["state"]["state"]),
                    "inc": str(rng["state"]["inc"]),
                    "has_uint32": int(rng["has_uint32"]),
                    "uinteger": int(rng["uinteger"]),
                },
                "initializer": {
                    "bit_generator": init_name,
                    "pos": int(init_pos),
                    "has_gauss": int(has_gauss),
                    "cached_gaussian": float(gauss),
                },
                "optimizer_iterations": [mf.u_optimizer.n_iterations, mf.i_optimizer.n_iterations],
            },
            arrays={
                "item_factors": item_factors.reshape(len(pages), self.n_factors),
                "user_factors": user_factors.reshape(len(users), self.n_factors),
                "uniform": np.asarray(self._uniform, dtype=np.float64),
                "initializer.keys": np.asarray(init_keys, dtype=np.uint32),
            },
            strings={"pages": pages, "users": users},
        )
        state.nest("popularity", self._popularity.state_arrays())
        return state

    @classmethod
    def from_state(cls, params: dict[str, Any], state: ModelState) -> ImplicitMF:
        """Inverse of :meth:`state_arrays`."""
        model = cls(**params)
        mf = model._mf
        pages, users = state.table("pages"), state.table("users")
        items = state.array("item_factors", np.float64, ndim=2)
        user_rows = state.array("user_factors", np.float64, ndim=2)
        n = model.n_factors
        if items.shape != (len(pages), n) or user_rows.shape != (len(users), n):
            raise ModelError("factorisation state: factor matrices do not fit the id tables")
        model._items = list(pages)
        model._index = {page: i for i, page in enumerate(pages)}
        model._users = OrderedDict.fromkeys(users)
        # Own copies: River's optimiser updates latent vectors in place.
        mf.i_latents.update(zip(pages, items.copy(), strict=True))
        mf.u_latents.update(zip(users, user_rows.copy(), strict=True))
        model._matrix = items.copy()
        model._dirty = set()
        values = state.values
        sampler = values["sampler"]
        model._generator.bit_generator.state = {
            "bit_generator": sampler["bit_generator"],
            "state": {"state": int(sampler["state"]), "inc": int(sampler["inc"])},
            "has_uint32": int(sampler["has_uint32"]),
            "uinteger": int(sampler["uinteger"]),
        }
        model._uniform = state.array("uniform", np.float64).copy()
        model._uniform_pos = int(values["uniform_pos"])
        init = values["initializer"]
        mf.initializer._rng.set_state(  # type: ignore[attr-defined]
            (
                init["bit_generator"],
                state.array("initializer.keys", np.uint32),
                int(init["pos"]),
                int(init["has_gauss"]),
                float(init["cached_gaussian"]),
            )
        )
        mf.u_optimizer.n_iterations, mf.i_optimizer.n_iterations = map(
            int, values["optimizer_iterations"]
        )
        model._popularity.restore(state.sub("popularity"))
        model.n_events_learned = int(values["n_events_learned"])
        return model

    def _uniform_draw(self) -> float:
        if self._uniform_pos >= _RANDOM_BATCH:
            self._uniform = self._generator.random(_RANDOM_BATCH)
            self._uniform_pos = 0
        u = self._uniform[self._uniform_pos]
        self._uniform_pos += 1
        return float(u)

    def _ensure_item(self, item: Hashable) -> int:
        idx = self._index.get(item)
        if idx is None:
            idx = self._index[item] = len(self._items)
            self._items.append(item)
        return idx

    def learn_one(
        self,
        user: Hashable,
        item: Hashable,
        y: Reward | None = None,
        x: dict[str, Any] | None = None,
    ) -> None:
        mf = self._mf
        users = self._users
        if user in users:
            users.move_to_end(user)
        else:
            users[user] = None
            if len(users) > self.max_users:
                old, _ = users.popitem(last=False)
                mf.u_latents.pop(old, None)
        self._dirty.add(self._ensure_item(item))
        mf.learn_one(user, item, 1.0)
        n = len(self._items)
        if n > 1:
            for _ in range(self.n_negatives):
                j = int(self._uniform_draw() * n)
                neg = self._items[j]
                if neg != item:
                    mf.learn_one(user, neg, 0.0)
                    self._dirty.add(j)
        self._popularity.learn_one(user, item, x=x)
        self.n_events_learned += 1

    def _item_factors(self) -> np.ndarray:
        n = len(self._items)
        if self._matrix.shape[0] < n:
            grown = np.zeros((max(n, 2 * self._matrix.shape[0], 64), self.n_factors))
            grown[: self._matrix.shape[0]] = self._matrix
            self._matrix = grown
        if self._dirty:
            latents, items = self._mf.i_latents, self._items
            for idx in self._dirty:
                self._matrix[idx] = latents[items[idx]]
            self._dirty.clear()
        return self._matrix[:n]

    def _user_vector(self, user: Hashable, history: Sequence[Hashable]) -> np.ndarray | None:
        if self.user_factors and user in self._users and user in self._mf.u_latents:
            return self._mf.u_latents[user]
        rows = [self._index[h] for h in history[-self.n_recent :] if h in self._index]
        if not rows:
            return None
        v = self._item_factors()[rows]
        gram = v.T @ v + self.fold_in_l2 * np.eye(self.n_factors)
        return np.linalg.solve(gram, v.sum(axis=0))

    def score_items(
        self, user: Hashable, items: Sequence[Hashable], history: Sequence[Hashable] = ()
    ) -> list[float]:
        u = self._user_vector(user, history)
        if u is None:
            return self._popularity.score_items(user, items)
        factors = self._item_factors()
        return [float(factors[self._index[i]] @ u) if i in self._index else 0.0 for i in items]

    def user_history(self, user: Hashable) -> Sequence[Hashable]:
        return ()

    def _recommend(
        self, user: Hashable, k: int, history: Sequence[Hashable], exclude: Collection[Hashable]
    ) -> list[tuple[Hashable, float]]:
        u = self._user_vector(user, history)
        if u is None:
            return self._popularity._recommend(user, k, history, exclude)
        scores = self._item_factors() @ u
        banned = [self._index[e] for e in exclude if e in self._index]
        if banned:
            scores[banned] = -np.inf
        n_ok = scores.shape[0] - len(banned)
        kk = min(k, n_ok)
        if kk <= 0:
            return []
        top = np.argpartition(-scores, kk - 1)[:kk] if kk < scores.shape[0] else np.arange(kk)
        top = top[np.argsort(-scores[top], kind="stable")]
        items = self._items
        return [(items[i], float(scores[i])) for i in top.tolist()]


def _factor_dict(factory: Any, values: dict) -> Any:
    d: defaultdict = defaultdict(factory)
    d.update(values)
    return d
