"""How aws-user-personalization(-v2) and aws-personalized-ranking(-v2) choose their model without HPO.

The choice rule, from the shape of the selected events (U users, I items, P distinct user-item
pairs, e = P / U pairs per user):

1. `algorithmHyperParameters.hidden_dimension` given: ALS with it (the caller asked for factors).
2. I <= EASE_MAX_ITEMS: EASE (ease.py) with l2 = EASE_L2 x the mean squared confidence value
   (log2(1 + summed event weight), so repeated events do not weaken the regularisation), and a
   popularity discount: final score = max(score, 0) / (1 + item's user count)^beta. beta is picked
   on a validation split of the training users (metrics.Holdout with seed + 1, the protocol
   again): among POPULARITY_DISCOUNTS, the largest beta whose validation NDCG@25 is at least
   NEAR_BEST of the best one. The discount costs no refit, and it is what lifts coverage above
   ALS's without losing NDCG: differences below NEAR_BEST are within one split's noise (the bench
   shows a spread of 5-20% of the mean over splits), so the wider-reaching list is preferred.
3. Larger catalogues: ALS (factorization.py) with factors = 2^round(log2(1.5 e)) clipped to
   [16, 128], regularization 10 and alpha 10, or alpha 4 when users are dense (e >= 50: heavy
   users need less confidence weighting to stand out). No validation here: it would double the
   training time at the sizes where ALS is picked (1M interactions must train in < 30 s).

Measured on bench/bench_quality.py (MovieLens 100K, UCI Online Retail sample, demo shop): EASE
with the discount matched or beat implicit's ALS and a tuned EASE on NDCG@25 and covered more of
the catalogue than ALS; l2 = 200 was best or within noise on all three.

Memory and time of EASE grow with I^2 and I^3, hence the bound EASE_MAX_ITEMS = 3000. Measured
on generated data (20k users, 300k events, 3000 items; 2-core machine shared by other jobs): one
EASE fit takes 3.5 s CPU and raises peak RSS by 215 MB (float64 Gram matrix and inverse, float32
weights); a FULL training fits four times (a validation and a final fit, for the evaluation and for
the served model). At 5000 items one fit took 10.3 s CPU and +660 MB, too slow for four.

-v2 recipes also use the items dataset's categorical fields (item_metadata): each (field, value)
acts as one more "user" who interacted with every item holding that value, so items sharing
values move together. In EASE that adds METADATA_WEIGHT x l2 x (values two items share) / (values
per item) to their co-occurrence; in ALS the same rows join the training matrix.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from include.local_personalize.engine import factorization, metrics
from include.local_personalize.engine.ease import EaseModel
from include.local_personalize.engine.factorization import FactorModel, confidence
from include.local_personalize.engine.interactions import Events, IdIndex, weight_matrix

EASE_MAX_ITEMS = 3000
EASE_L2 = 200.0
POPULARITY_DISCOUNTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
NEAR_BEST = 0.95
OBJECTIVE = "normalized_discounted_cumulative_gain_at_25"


def params_from_config(solution_config: dict | None) -> dict:
    params = factorization.params_from_config(solution_config)
    named = ((solution_config or {}).get("algorithmHyperParameters") or {}).keys()
    params["model"] = "als" if set(named) & set(factorization.HYPERPARAMETER_NAMES) else "auto"
    return params


def search_space(solution_config: dict | None, base: dict) -> list[dict]:
    """performHPO: the ALS grid, plus EASE at half, one and two times its l2 unless hpoConfig
    restricts hidden_dimension (then the caller is tuning the factor model)."""
    als = [{**candidate, "model": "als"} for candidate in factorization.search_space(solution_config, base)]
    ranges = ((solution_config or {}).get("hpoConfig") or {}).get("algorithmHyperParameterRanges") or {}
    tuning_factors = any(
        factorization.HYPERPARAMETER_NAMES.get(entry.get("name")) == "factors"
        for entry in ranges.get("integerHyperParameterRanges") or []
    )
    if tuning_factors or base.get("model") == "als":
        return als
    return [{"model": "ease", "l2_scale": scale} for scale in (1.0, 0.5, 2.0)] + als


def shape_params(events: Events) -> dict:
    """Rule 2 or 3 above for these events (before any validation)."""
    frame = events.frame
    n_items = frame["item"].nunique()
    if n_items <= EASE_MAX_ITEMS:
        return {"model": "ease", "l2_scale": 1.0}
    pairs = len(frame[["user", "item"]].drop_duplicates())
    per_user = pairs / max(1, frame["user"].nunique())
    factors = int(min(128, max(16, 2 ** round(math.log2(max(1.0, 1.5 * per_user))))))
    return {
        "model": "als",
        "factors": factors,
        "regularization": 10.0,
        "alpha": 4.0 if per_user >= 50 else 10.0,
        "iterations": 15,
    }


def fit(
    recipe: str,
    events: Events,
    params: dict,
    seed: int,
    should_stop: Callable[[], bool],
    *,
    use_metadata: bool = False,
) -> FactorModel | EaseModel:
    """The user-personalization / ranking model for these events by the rule above."""
    too_many_items = events.frame["item"].nunique() > EASE_MAX_ITEMS
    if params.get("model", "auto") == "auto" or (params["model"] == "ease" and too_many_items):
        params = {**params, **shape_params(events)}
    if params["model"] == "als":
        als = {k: params[k] for k in ("factors", "regularization", "alpha", "iterations")}
        als_params = {**als, "model": "als", "item_metadata": use_metadata}
        return FactorModel.fit(recipe, events, als_params, seed, should_stop)
    return _fit_ease(recipe, events, params, seed, should_stop, use_metadata)


def _fit_ease(recipe, events, params, seed, should_stop, use_metadata) -> EaseModel:
    users = IdIndex(np.sort(events.frame["user"].unique()).astype(str))
    items = IdIndex(np.sort(events.frame["item"].unique()).astype(str))
    if params.get("popularity_discount") is None:
        params = {
            **params,
            "popularity_discount": _validated_discount(recipe, events, params, seed, use_metadata),
        }
    user_items = confidence(weight_matrix(events.frame, users, items))
    mean_square = float(np.mean(user_items.data**2)) if user_items.nnz else 1.0
    scale = float(params.get("l2_scale", 1.0))
    resolved = {
        "model": "ease",
        "l2_scale": scale,
        "l2": EASE_L2 * scale * mean_square,
        "popularity_discount": float(params["popularity_discount"]),
        "item_metadata": use_metadata,
    }
    return EaseModel.fit_on(recipe, events, users, items, resolved, should_stop)


def _validated_discount(recipe, events, params, seed, use_metadata) -> float:
    """Rule 2's beta: the largest discount within NEAR_BEST of the best validation NDCG@25."""
    validation = metrics.Holdout(events, metrics.split_seed(events, seed + 1))
    catalog = len(events.catalog_item_ids)
    model = _fit_ease(
        recipe, validation.training, {**params, "popularity_discount": 0.0}, seed, lambda: False, use_metadata
    )
    scores = {}
    for discount in POPULARITY_DISCOUNTS:
        model.params["popularity_discount"] = discount
        scores[discount] = metrics.score_model(model, validation, catalog)[OBJECTIVE]
    best = max(scores.values())
    return max(d for d, score in scores.items() if score >= NEAR_BEST * best)
