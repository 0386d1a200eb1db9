"""The scoring core: one batch in, one batch out, no transport.

``decode`` turns Kafka messages into page views or dead letters; ``score`` turns page
views plus the users' state read from Redis into encoded Recommendations and the state to
write back. The Faust agent drives it, and so can any other transport (the benchmark
drives it from a plain confluent-kafka loop), because all I/O stays with the caller.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from online_model.catalog import Catalog, Rules, recommend_eligible
from online_model.catalog.fresh import blend_fresh
from online_model.quality import HitCounts, rank_of
from streams.catalog.rules import NO_RULES, rules_from_context
from streams.errors import DecodeError, KeyMismatch, SchemaViolation
from streams.experiment.assignment import CHALLENGER, CHAMPION
from streams.experiment.statistics import ArmCounts
from streams.io.codec import PAGE_VIEW, RECOMMENDATION, AvroCodec
from streams.io.dlq import DeadLetter, InputMessage
from streams.scorer.experiment_routing import ArmRouting
from streams.scorer.model_holder import ModelHolder, Served
from streams.state.history import HistoryUpdate, UserState

#: Newest history pages whose categories are the user's, for new pages.
FRESH_RECENT = 5


@dataclass
class PageViewIn:
    """A decoded page view with the message it came in."""

    message: InputMessage
    record: dict[str, Any]
    #: The rules the view's ``context`` sets for its answer (category, exclude).
    rules: Rules = NO_RULES

    @property
    def user(self) -> str:
        return str(self.record["user_id"])


class ServedQuality(HitCounts):
    """Online quality: was the next page a user viewed in the list served before it?"""

    def add_served(self, served: list[str], page: str) -> None:
        if served:
            self.add(rank_of(page, served))


@dataclass
class ScoredBatch:
    """Encoded recommendations (key, value), and what to write back to Redis."""

    recommendations: list[tuple[bytes, bytes]] = field(default_factory=list)
    update: HistoryUpdate = field(default_factory=HistoryUpdate)
    quality: ServedQuality = field(default_factory=ServedQuality)
    version: int = 0
    #: Judged views per arm while an experiment runs (None outside one).
    arms: dict[str, ArmCounts] | None = None


class ScoringCore:
    """Decode, recommend and encode; stateless apart from the model holder."""

    def __init__(
        self,
        holder: ModelHolder,
        model_name: str,
        k: int = 10,
        history_length: int = 50,
        max_event_bytes: int = 64 * 1024,
        registry_url: str | None = None,
        catalog: Catalog | None = None,
        fresh_slots: int = 0,
    ) -> None:
        self.holder = holder
        #: Places of a list that new pages of the user's categories may take (0: none);
        #: needs a catalog that keeps fresh pages.
        self.fresh_slots = fresh_slots
        #: Pages that may be served; None serves every page the model ranks.
        self.catalog = catalog
        self.model_name = model_name
        self.k = k
        self.history_length = history_length
        self.page_views = AvroCodec.bundled(PAGE_VIEW, registry_url, max_bytes=max_event_bytes)
        self.recommendations = AvroCodec.bundled(RECOMMENDATION, registry_url)
        #: The running experiment, set between batches by the scorer's poll (None: none).
        self.routing: ArmRouting | None = None

    def decode(self, messages: Sequence[InputMessage]) -> tuple[list[PageViewIn], list[DeadLetter]]:
        good: list[PageViewIn] = []
        dead: list[DeadLetter] = []
        decode = self.page_views.decode
        for message in messages:
            try:
                record = decode(message.value)
                key = message.key
                if key is None or key.decode("utf-8", "replace") != record["user_id"]:
                    raise KeyMismatch(f"key {key!r} is not the user_id {record['user_id']!r}")
                context = record.get("context")
                # Most views carry no context: skip the rule parser for them.
                rules = rules_from_context(context) if context else NO_RULES
            except (DecodeError, SchemaViolation) as exc:  # BadRule is a SchemaViolation
                dead.append(DeadLetter(message, exc))
                continue
            good.append(PageViewIn(message, record, rules))
        return good, dead

    def recommend(
        self,
        served: Served,
        user: str,
        history: list[str],
        k: int | None = None,
        now_ms: int | None = None,
        rules: Rules = NO_RULES,
    ) -> list[tuple[str, float]]:
        """Top-k for a user with ``history`` (newest last), excluding pages already seen,
        pages the catalog does not allow at ``now_ms`` (default: now) and pages the
        request's ``rules`` leave out."""
        exclude = set(history)
        if rules.exclude:
            exclude |= rules.exclude
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        k = k or self.k
        items = recommend_eligible(
            served.model,
            user,
            k,
            history,
            exclude,
            self.catalog,
            now_ms,
            categories=rules.categories,
        )
        catalog = self.catalog
        if (
            self.fresh_slots
            and catalog is not None
            and catalog.fresh is not None
            and catalog.fresh.may_have_fresh(now_ms)
        ):
            items = self._with_fresh(catalog, items, history, exclude, rules, k, now_ms)
        return [(item if type(item) is str else str(item), float(score)) for item, score in items]

    def _with_fresh(
        self,
        catalog: Catalog,
        items: list[tuple[Any, float]],
        history: list[str],
        exclude: set[str],
        rules: Rules,
        k: int,
        now_ms: int,
    ) -> list[tuple[Any, float]]:
        """``items`` with new pages of the categories of the user's recent pages in up to
        ``fresh_slots`` places at the end (eligible and within the request's rules)."""
        assert catalog.fresh is not None
        categories = [c for page in history[-FRESH_RECENT:] for c in catalog.categories(page)]
        if not categories:
            return items
        taken = exclude.union(page for page, _ in items)
        wanted = rules.categories
        fresh = [
            page
            for page in catalog.fresh.candidates(categories, now_ms, 4 * self.fresh_slots, taken)
            if catalog.eligible(page, now_ms)
            and (not wanted or not catalog.categories(page).isdisjoint(wanted))
        ]
        return blend_fresh(items, fresh, k, self.fresh_slots)

    def score(self, views: Sequence[PageViewIn], state: UserState) -> ScoredBatch:
        routing = self.routing
        if routing is not None:
            return self._score_arms(views, state, routing)
        served_model = self.holder.current  # one model for the whole batch
        out = ScoredBatch(version=served_model.version)
        last_served = state.served
        now_ms = int(time.time() * 1000)
        for view in views:
            page = str(view.record["page_id"])
            out.quality.add_served(last_served.get(view.user, []), page)
            self._serve(out, state, view, page, served_model, self.model_name, "", now_ms)
        return out

    def _serve(
        self,
        out: ScoredBatch,
        state: UserState,
        view: PageViewIn,
        page: str,
        served: Served,
        model_name: str,
        arm: str,
        now_ms: int,
    ) -> list[str]:
        """Answer one view with ``served``: the page joins the user's history, the list is
        recorded as served and its Recommendation queued. Returns the history."""
        record, user = view.record, view.user
        history = self._viewed(state.histories, user, page, record["ts"])
        items = self.recommend(served, user, history, now_ms=now_ms, rules=view.rules)
        ranked = [item for item, _ in items]
        state.served[user] = ranked
        out.update.appends.setdefault(user, []).append(page)
        out.update.served[user] = ranked
        answer = self._answer(record, items, model_name, served.version, now_ms, arm)
        out.recommendations.append((user.encode(), self.recommendations.encode(answer)))
        return history

    def _viewed(
        self, histories: dict[str, list[str]], user: str, page: str, ts_ms: int
    ) -> list[str]:
        """Append ``page`` to the user's bounded history (returned); the cold-start model
        learns it, and the catalog counts it against the page's freshness."""
        history = histories.setdefault(user, [])
        history.append(page)
        if len(history) > self.history_length:
            del history[: len(history) - self.history_length]
        self.holder.observe(user, page, ts_ms)
        if self.fresh_slots and self.catalog is not None and self.catalog.fresh is not None:
            self.catalog.fresh.observe(page)  # a page stops being fresh once viewed enough
        return history

    @staticmethod
    def _answer(
        record: dict[str, Any],
        items: list[tuple[str, float]],
        model_name: str,
        version: int,
        now_ms: int,
        arm: str,
    ) -> dict[str, Any]:
        """The Recommendation answering page view ``record``."""
        return {
            "event_id": record["event_id"],
            "user_id": record["user_id"],
            "items": [{"page_id": item, "score": score} for item, score in items],
            "model_name": model_name,
            "model_version": version,
            "page_view_ts": record["ts"],
            "produced_at": now_ms,
            "arm": arm,
        }

    def _score_arms(
        self, views: Sequence[PageViewIn], state: UserState, routing: ArmRouting
    ) -> ScoredBatch:
        """:meth:`score` during an experiment: each user's arm picks the model (split),
        or the champion serves and the challenger's list is kept unsent (shadow)."""
        experiment = routing.experiment
        models = {CHAMPION: self.holder.current, CHALLENGER: routing.challenger.current}
        names = {CHAMPION: experiment.champion, CHALLENGER: experiment.challenger}
        shadow = routing.shadow
        out = ScoredBatch(version=models[CHAMPION].version)
        arms = out.arms = {CHAMPION: ArmCounts(), CHALLENGER: ArmCounts()}
        last_served = state.served
        last_shadow = state.shadow_served
        now_ms = int(time.time() * 1000)
        for view in views:
            user = view.user
            page = str(view.record["page_id"])
            arm = routing.arm(user)
            before = last_served.get(user, [])
            if before:
                rank = rank_of(page, before)
                out.quality.add(rank)
                # In shadow mode every served list is the champion's.
                arms[CHAMPION if shadow else arm].add(rank)
            if shadow and arm == CHALLENGER:
                unsent = last_shadow.get(user, [])
                if unsent:
                    arms[CHALLENGER].add(rank_of(page, unsent))
            serving_arm = CHAMPION if shadow else arm
            history = self._serve(
                out, state, view, page, models[serving_arm], names[serving_arm], serving_arm, now_ms
            )
            if shadow and arm == CHALLENGER:
                unsent_items = self.recommend(
                    models[CHALLENGER], user, history, now_ms=now_ms, rules=view.rules
                )
                last_shadow[user] = out.update.shadow_served[user] = [i for i, _ in unsent_items]
        return out
