"""The merged model of trainer shards against one trainer, in process, on the same events.

Prequential (test, then learn), as a live scorer would serve: the served model is a
snapshot refreshed every ``every`` events, of one model learning everything
(``single``), or the merge (:func:`online_model.models.shard_merge.merge_states`) of one
model per partition, each learning its users' events (``merged``, partitions by a hash
of the user as Kafka's key partitioner does; kept up to date as the merger does, by
:class:`~online_model.models.merged_chain.MergedChain`). Every event is first judged on the served
model, with the user's earlier pages as history (the last ``HISTORY``) and excluded, then
learned. Also: the per-user state (recent pages) each shard holds for 1, 2 and 4 shards.
"""

from __future__ import annotations

import sys
import zlib
from collections import deque
from collections.abc import Sequence
from typing import Any

from online_model.models.covisit.model import Covisitation
from online_model.models.merged_chain import MergedChain
from online_model.models.shard_merge import partition_params
from online_model.quality import HitCounts, rank_of

HISTORY = 20
K = 10


def partition_of(user: str, partitions: int) -> int:
    return zlib.crc32(user.encode()) % partitions


def prequential(
    events: Sequence[tuple[str, str, int]],
    partitions: int,
    every: int,
    reference_every: int | None,
) -> dict[str, Any]:
    """hit@10 of the served single model and of the served merge, on ``events``; the
    parts learn the mixture weight on the merge of ``reference_every`` events ago (as
    shards do, :class:`streams.trainer.shards.MixtureReference`; None: on their own)."""
    params = Covisitation()._get_params()
    single = Covisitation(**params)
    part_params = partition_params(Covisitation, params, partitions)
    parts = [Covisitation(**part_params) for _ in range(partitions)]
    chain = MergedChain(params)  # the merger's: deltas of the rows the parts changed
    served_single = served_merged = None
    hits = {"single": HitCounts(), "merged": HitCounts()}
    histories: dict[str, deque[str]] = {}
    for i, (user, page, ts) in enumerate(events):
        if i % every == 0:
            served_single = Covisitation.from_state(params, single.state_arrays())
            state, _ = chain.update(
                {j: (part_params, p.state_arrays()) for j, p in enumerate(parts)}
            )
            served_merged = Covisitation.from_state(params, state)
        if reference_every and i % reference_every == 0 and i:
            assert served_merged is not None
            for part in parts:
                part.set_mixture_reference(served_merged)
        history = histories.setdefault(user, deque(maxlen=HISTORY))
        if history:
            seen = set(history)
            for name, model in (("single", served_single), ("merged", served_merged)):
                assert model is not None
                ranked = [p for p, _ in model.recommend(user, K, list(history), seen)]
                hits[name].add(rank_of(page, ranked))
        x = {"ts": ts}
        single.learn_one(user, page, x=x)
        parts[partition_of(user, partitions)].learn_one(user, page, x=x)
        history.append(page)
    out: dict[str, Any] = {name: h.report(K) for name, h in hits.items()}
    a, b = out["single"]["hit@10"], out["merged"]["hit@10"]
    out["relative_difference"] = (b - a) / a if a else None
    out["judged"] = hits["single"].judged
    out["mixture"] = {
        "single": single._mixture,
        "parts": [round(p._mixture, 4) for p in parts],
    }
    out["per_user_state"] = per_user_state(single, parts)
    return out


def _histories_bytes(model: Covisitation) -> int:
    """Bytes of a model's per-user state: the LRU of users and each one's recent pages
    (the page strings are shared with the graph; the user ids are not)."""
    histories = model._histories
    total = sys.getsizeof(histories)
    for user, pages in histories.items():
        total += sys.getsizeof(user) + sys.getsizeof(pages)
    return total


def per_user_state(single: Covisitation, parts: Sequence[Covisitation]) -> dict[str, Any]:
    """Users and bytes of per-user state held by the largest shard, for 1, 2 and 4 shards
    (shard ``i`` of ``n`` holds the partitions ``p % n == i``)."""
    out: dict[str, Any] = {
        "single_trainer": {"users": len(single._histories), "mb": _histories_bytes(single) / 1e6}
    }
    for n in (1, 2, 4):
        shards = [[p for j, p in enumerate(parts) if j % n == i] for i in range(min(n, len(parts)))]
        sizes = [
            (sum(len(p._histories) for p in shard), sum(_histories_bytes(p) for p in shard))
            for shard in shards
        ]
        users, size = max(sizes, key=lambda s: s[1])
        out[f"{n}_shards"] = {"largest_shard_users": users, "largest_shard_mb": size / 1e6}
    return out
