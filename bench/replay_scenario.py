"""One seed of the replay gate's scenario, shared by bench/bench_replay_gate.py and its test.

The demo shop's data (include/demo_shop.py, the seed's), its last `holdout_days` days held out.
On the days before, the local engine trains
- a champion and a challenger of the same recipe on the same data, with two training seeds:
  aws-user-personalization with the demo config's solution_config (hidden_dimension 32: implicit
  ALS, whose seed draws the initial factors) unless told otherwise. Personalize draws its
  evaluation split at random; the local engine seeds it by the data and the request's seed, so
  two seeds are two retrains, each measured on its own split;
- a clearly worse challenger, aws-popularity-count, against a champion of the engine's default
  aws-user-personalization (EASE, no solution_config), both on the same data.
Then both gates decide: the offline gate (GetSolutionMetrics of each, tolerance 0, as configured
by default) and the replay gate (every model's recommendations for the same held-out users,
scored against the held-out window by include/pipeline/replay.py, tolerance auto). The models
answer through TrainedModel.recommend, what the local service's batch inference job calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pandas as pd

from include.demo_shop import build
from include.local_personalize.engine import api
from include.pipeline import replay, replay_stats
from include.pipeline.gate import decide
from include.pipeline.replay_gate import decide_replay
from include.pipeline.replay_plan import Window

METRIC = "normalized_discounted_cumulative_gain_at_25"
DEMO_SOLUTION_CONFIG = {"algorithmHyperParameters": {"hidden_dimension": "32"}}
END = datetime(2026, 3, 1, tzinfo=UTC)


@dataclass(frozen=True)
class SeedOutcome:
    seed: int
    offline_accepted: bool  # same recipe, offline gate, tolerance 0
    offline_difference: float  # challenger - champion, GetSolutionMetrics
    replay_accepted: bool  # same recipe, replay gate, tolerance auto
    replay_difference: replay_stats.Interval
    replay_champion: replay_stats.Interval
    popularity_offline_accepted: bool
    popularity_replay_accepted: bool
    popularity_difference: replay_stats.Interval
    users: int


def run_seed(
    seed: int,
    *,
    users: int = 600,
    items: int = 200,
    days: int = 40,
    holdout_days: int = 7,
    sample: int = 400,
    resamples: int = 1000,
    pair_solution_config: dict | None = DEMO_SOLUTION_CONFIG,
) -> SeedOutcome:
    data = build(users=users, items=items, days=days, seed=seed, end=END)
    interactions = data.interactions()
    window = Window.after((END - timedelta(days=holdout_days)).date(), holdout_days)
    cut = int(datetime.combine(window.start, datetime.min.time(), UTC).timestamp())
    before = interactions[interactions["TIMESTAMP"] < cut].reset_index(drop=True)
    inside = interactions[interactions["TIMESTAMP"] >= cut]
    training = api.TrainingData(before)  # v1 recipes do not train on the items dataset

    def train(recipe: str, training_seed: int, solution_config: dict | None = None):
        request = api.TrainingRequest(recipe, seed=training_seed, solution_config=solution_config)
        return api.train(request, training)

    user_personalization = "aws-user-personalization"
    champion, champion_offline = train(user_personalization, 1000 + seed, pair_solution_config)
    challenger, challenger_offline = train(user_personalization, 2000 + seed, pair_solution_config)
    default_champion, default_offline = train(user_personalization, 4000 + seed)
    popularity, popularity_offline = train("aws-popularity-count", 3000 + seed)

    held = replay.held_out(
        _pairs(inside),
        _pairs(before),
        sample_size=sample,
        seed=window.seed,
        catalog_items=data.items["item_id"],
    )
    count = replay.num_results(held)

    def scores(model) -> replay.UserScores:
        outputs = {u: [item for item, _ in model.recommend(u, num_results=count)] for u in held.users}
        return replay.score_users(outputs, held)

    def replay_decision(champion_model, champion_metrics, challenger_model, challenger_metrics):
        result = replay_stats.bootstrap(
            {"champion": scores(champion_model), "challenger": scores(challenger_model)},
            reference="champion",
            resamples=resamples,
            seed=window.seed,
        )
        decision = decide_replay(
            result,
            metric=METRIC,
            thresholds={},
            tolerance="auto",
            window=window.as_list(),
            offline={"challenger": challenger_metrics, "champion": champion_metrics},
        )
        return decision, result

    def offline_accepts(metrics, champion_metrics) -> bool:
        return decide(metrics, champion_metrics, metric=METRIC, thresholds={}, tolerance=0.0).accepted

    same, same_result = replay_decision(champion, champion_offline, challenger, challenger_offline)
    worse, worse_result = replay_decision(default_champion, default_offline, popularity, popularity_offline)
    return SeedOutcome(
        seed=seed,
        offline_accepted=offline_accepts(challenger_offline, champion_offline),
        offline_difference=challenger_offline[METRIC] - champion_offline[METRIC],
        replay_accepted=same.accepted,
        replay_difference=same_result.differences["challenger"][METRIC],
        replay_champion=same_result.metrics["champion"][METRIC],
        popularity_offline_accepted=offline_accepts(popularity_offline, default_offline),
        popularity_replay_accepted=worse.accepted,
        popularity_difference=worse_result.differences["challenger"][METRIC],
        users=len(held.users),
    )


def _pairs(frame: pd.DataFrame):
    return zip(frame["USER_ID"].astype(str), frame["ITEM_ID"].astype(str), strict=True)
