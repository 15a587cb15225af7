"""The baseline gate: a challenger must beat popularity, not only a number.

Absolute thresholds depend on the data; the lift over a popularity-count solution trained on the
same data does not, and it catches a model that silently learned nothing (a lift near 1). With
`gate.baseline: popularity-count`, the gate metric of the challenger divided by the baseline's must
reach `gate.min_lift`; a missing baseline is a failure (nothing to compare with is not a pass).
The thresholds and champion rule (gate.py) apply as before; this adds one rule to their decision.

Pure: the caller reads the metrics (GetSolutionMetrics of the baseline's newest ACTIVE version).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace

from include.pipeline.gate import GateDecision, _fmt


def lift(challenger: float | None, baseline: float | None) -> float | None:
    """challenger / baseline; inf when the baseline scores 0 and the challenger more; None if unknown."""
    if challenger is None or baseline is None or math.isnan(challenger) or math.isnan(baseline):
        return None
    if baseline <= 0:
        return math.inf if challenger > 0 else None
    return challenger / baseline


def apply_baseline(
    decision: GateDecision,
    baseline: Mapping[str, float] | None,
    *,
    min_lift: float,
    baseline_arn: str | None,
) -> dict:
    """`decision.as_dict()` with the lift rule applied, plus `baseline`, `baseline_arn`, `lift`, `min_lift`."""
    metric = decision.metric
    value = lift(decision.challenger.get(metric), None if baseline is None else baseline.get(metric))
    failures = list(decision.failures)
    if baseline is None:
        failures.append("no baseline version to compare with (baseline training failed or has not run)")
    elif value is None:
        failures.append(f"lift over the baseline on {metric} is unknown (a value is missing or not a number)")
    elif value < min_lift:
        failures.append(f"{metric} lift over the popularity baseline {value:.2f}x < min_lift {min_lift:g}x")
    judged = replace(decision, failures=failures, accepted=not failures or decision.forced)
    result = judged.as_dict()
    base_value = None if baseline is None else baseline.get(metric)
    check = "pass" if value is not None and value >= min_lift else "FAIL"
    result["table"] += (
        f"\nbaseline rule: {metric} challenger {_fmt(decision.challenger.get(metric))} / baseline "
        f"{_fmt(base_value)} = lift {'-' if value is None else f'{value:.2f}x'} >= {min_lift:g}x: {check}"
    )
    result.update(
        baseline=None if baseline is None else dict(baseline),
        baseline_arn=baseline_arn,
        lift=None if value is None or math.isinf(value) else value,
        min_lift=min_lift,
    )
    return result
