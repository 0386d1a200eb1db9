"""Per-arm served figures are what an offline prequential evaluation of the same events
gives, within sampling error: on the arm's own users and on everyone.

Not exactly: a served list is computed at the user's previous view and judged at the next
one, while offline evaluation ranks at the next view with everything learned since; and
a user served an empty list is not judged, offline counts it as a miss."""

from __future__ import annotations

import math
import time

from online_model.data.generate import generate
from online_model.evaluation import PrequentialEvaluator
from online_model.models.popularity import DecayedPopularity
from online_model.quality import HitCounts
from online_model.registry import make_model
from streams.experiment.assignment import CHALLENGER, CHAMPION, arm_of
from streams.experiment.record import Experiment
from streams.experiment.statistics import ArmCounts
from streams.scorer.core import PageViewIn, ScoringCore
from streams.scorer.experiment_routing import ArmRouting
from streams.scorer.model_holder import ModelHolder, Served
from streams.state.history import UserState


def test_per_arm_served_quality_matches_offline_prequential_evaluation() -> None:
    rows = generate(n_users=300, n_pages=150, n_events=6000, seed=11).rows()
    experiment = Experiment(id="fixed-seed", champion="pop", challenger="cov", share=0.5)
    # The scorer's models: live instances that learn every event (both arms learn the
    # whole stream), as their trainers would, before the scorer answers it.
    serving = {CHAMPION: DecayedPopularity(), CHALLENGER: make_model("covisit")}
    champion, challenger = ModelHolder(), ModelHolder()
    champion.current = Served(serving[CHAMPION], 1, time.time())
    challenger.current = Served(serving[CHALLENGER], 1, time.time())
    # A history long enough that excluding it equals excluding every page seen, as
    # offline evaluation does.
    core = ScoringCore(champion, "pop", k=10, history_length=10_000)
    core.routing = ArmRouting(experiment, challenger)
    offline = {CHAMPION: PrequentialEvaluator(DecayedPopularity(), k=10, history_size=10_000)}
    offline[CHALLENGER] = PrequentialEvaluator(make_model("covisit"), k=10, history_size=10_000)
    offline_on_arm = {CHAMPION: HitCounts(), CHALLENGER: HitCounts()}
    served = {CHAMPION: ArmCounts(), CHALLENGER: ArmCounts()}
    state = UserState()
    seen: set[str] = set()
    for i, (user, page, ts, _) in enumerate(rows):
        arm = arm_of(user, experiment.id, experiment.share)
        for name, ev in offline.items():
            rank = ev.update(user, page, ts)
            if name == arm and user in seen:
                offline_on_arm[arm].add(rank)
        seen.add(user)
        for model in serving.values():
            model.learn_one(user, page, x={"ts": ts})
        view = PageViewIn(None, {"event_id": f"e{i}", "user_id": user, "page_id": page, "ts": ts})  # type: ignore[arg-type]
        out = core.score([view], state)
        assert out.arms is not None
        for name, counts in out.arms.items():
            served[name].merge(counts)

    for arm in (CHAMPION, CHALLENGER):
        # The arm's users, served vs offline: nearly the same judgements.
        same_users = offline_on_arm[arm]
        assert same_users.judged > 1000
        assert abs(served[arm].judged - same_users.judged) <= 0.01 * same_users.judged
        p = same_users.hit_rate
        se = math.sqrt(p * (1 - p) / same_users.judged)
        assert abs(served[arm].hit_rate - p) < 3 * se, (arm, served[arm].hit_rate, p)
        assert abs(served[arm].mrr - same_users.mrr) < 3 * se
        # Against the offline figure over every user: within sampling error.
        everyone = offline[arm].quality
        p = everyone.hit_rate
        se = math.sqrt(p * (1 - p) * (1 / served[arm].judged + 1 / everyone.judged))
        assert abs(served[arm].hit_rate - p) < 3 * se, (arm, served[arm].hit_rate, p)
    assert served[CHALLENGER].hit_rate > served[CHAMPION].hit_rate + 0.05
