"""The keys GetSolutionMetrics returns ("Evaluating a solution version with metrics"), in one place.

The local service's engine computes them (include/local_personalize/engine/metrics.py); the gate,
the config model and the report read them. Plain Python, so that parsing a DAG (config, gate) does
not import the engine's numpy, pandas and scipy.

The per-list scores are here too, so the local engine's offline metrics and the pipeline's replay
evaluation (include/pipeline/replay.py) compute them with one piece of code.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence

METRIC_NAMES = (
    "coverage",
    "mean_reciprocal_rank_at_25",
    "normalized_discounted_cumulative_gain_at_5",
    "normalized_discounted_cumulative_gain_at_10",
    "normalized_discounted_cumulative_gain_at_25",
    "precision_at_5",
    "precision_at_10",
    "precision_at_25",
)

# The ranking metrics' cut-offs: every metric above but coverage is one of these at one k.
RANKING_KS = (5, 10, 25)
MRR_K = 25


def reciprocal_rank(ranked: Sequence[Hashable], relevant: set, k: int) -> float:
    """1 / position of the first relevant item in the top k (position 1 at the top), else 0."""
    for position, item in enumerate(ranked[:k], start=1):
        if item in relevant:
            return 1.0 / position
    return 0.0


def ndcg(ranked: Sequence[Hashable], relevant: set, k: int) -> float:
    """Discounted gain of the hits in the top k (weight 1/log2(1+position)) over the best possible."""
    gain = sum(1.0 / math.log2(1 + p) for p, item in enumerate(ranked[:k], start=1) if item in relevant)
    ideal = sum(1.0 / math.log2(1 + p) for p in range(1, min(len(relevant), k) + 1))
    return gain / ideal if ideal else 0.0


def precision(ranked: Sequence[Hashable], relevant: set, k: int) -> float:
    """Relevant items in the top k, over k (a list shorter than k still divides by k)."""
    return sum(1 for item in ranked[:k] if item in relevant) / k


def list_scores(ranked: Sequence[Hashable], relevant: set) -> dict[str, float]:
    """Every ranking metric of METRIC_NAMES (all but coverage) for one ranked list."""
    scores = {f"mean_reciprocal_rank_at_{MRR_K}": reciprocal_rank(ranked, relevant, MRR_K)}
    for k in RANKING_KS:
        scores[f"normalized_discounted_cumulative_gain_at_{k}"] = ndcg(ranked, relevant, k)
        scores[f"precision_at_{k}"] = precision(ranked, relevant, k)
    return scores
