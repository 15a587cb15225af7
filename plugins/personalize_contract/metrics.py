"""The keys GetSolutionMetrics returns ("Evaluating a solution version with metrics"), in one place.

The local service's engine computes them (include/local_personalize/engine/metrics.py); the gate,
the config model and the report read them. Plain Python, so that parsing a DAG (config, gate) does
not import the engine's numpy, pandas and scipy.
"""

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
