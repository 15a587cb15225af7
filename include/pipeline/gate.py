"""The metric gate: may a freshly trained solution version (the challenger) replace the one the
campaign serves now (the champion)?

Two rules, both on Personalize's offline metrics (GetSolutionMetrics):
- absolute thresholds: every configured metric must reach its minimum;
- champion rule: on the gate metric the challenger may trail the champion by at most `tolerance`
  (an absolute difference: with precision_at_25 0.120 and tolerance 0.005, 0.115 still passes).
A forced deployment is accepted whatever the rules say, and the decision still lists what failed,
so the history shows that a person overrode the gate and why.

Pure: no I/O, so the decision is unit-tested and the same code explains itself in the task log.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class GateDecision:
    accepted: bool
    metric: str
    challenger: dict[str, float]
    champion: dict[str, float] | None
    thresholds: dict[str, float]
    tolerance: float
    failures: list[str] = field(default_factory=list)
    forced_reason: str | None = None

    @property
    def forced(self) -> bool:
        return self.forced_reason is not None

    @property
    def verdict(self) -> str:
        if self.forced and self.failures:
            return "FORCED"
        return "ACCEPTED" if self.accepted else "REJECTED"

    def summary(self) -> str:
        """One line for logs and notifications."""
        challenger = self.challenger.get(self.metric)
        champion = None if self.champion is None else self.champion.get(self.metric)
        line = f"gate {self.verdict} on {self.metric}: challenger {_fmt(challenger)} vs champion {_fmt(champion)}"
        if self.failures:
            line += "; " + "; ".join(self.failures)
        if self.forced:
            line += f"; forced: {self.forced_reason}"
        return line

    def table(self) -> str:
        """Challenger and champion side by side, with the rule that applies to each metric."""
        others = (set(self.challenger) | set(self.champion or {}) | set(self.thresholds)) - {self.metric}
        names = [self.metric, *sorted(others)]
        rows = [("metric", "challenger", "champion", "minimum", "check")]
        for name in names:
            challenger = self.challenger.get(name)
            champion = None if self.champion is None else self.champion.get(name)
            minimum = self.thresholds.get(name)
            floor = None if champion is None or name != self.metric else champion - self.tolerance
            bounds = [b for b in (minimum, floor) if b is not None]
            if not bounds:
                check = "-"
            elif challenger is not None and challenger >= max(bounds):
                check = "pass"
            else:
                check = "FAIL"
            label = name + (" (gate)" if name == self.metric else "")
            rows.append((label, _fmt(challenger), _fmt(champion), _fmt(minimum), check))
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        lines.append(
            f"champion rule: challenger >= champion - {self.tolerance:g} on {self.metric}; verdict {self.verdict}"
        )
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {**asdict(self), "verdict": self.verdict, "summary": self.summary(), "table": self.table()}


def decide(
    challenger: Mapping[str, float],
    champion: Mapping[str, float] | None,
    *,
    metric: str,
    thresholds: Mapping[str, float],
    tolerance: float,
    forced_reason: str | None = None,
) -> GateDecision:
    """Apply the thresholds and the champion rule. `champion` is None when no campaign serves yet."""
    if tolerance < 0:
        raise ValueError(f"gate tolerance must be >= 0, got {tolerance}")
    if forced_reason is not None and not forced_reason.strip():
        raise ValueError("a forced deployment needs a reason")
    failures = []
    for name, minimum in sorted(thresholds.items()):
        value = challenger.get(name)
        if value is None:
            failures.append(f"{name} missing from the challenger's metrics (threshold {minimum:g})")
        elif math.isnan(value):
            failures.append(f"{name} is not a number (threshold {minimum:g})")
        elif value < minimum:
            failures.append(f"{name} {value:.4f} < threshold {minimum:g}")
    value = challenger.get(metric)
    if metric not in thresholds:
        if value is None:
            failures.append(f"gate metric {metric} missing from the challenger's metrics")
        elif math.isnan(value):
            failures.append(f"gate metric {metric} is not a number")
    # NaN compares False with everything, so it would pass the champion rule: it counts as missing.
    if value is not None and math.isnan(value):
        value = None
    champion_value = None if champion is None else champion.get(metric)
    if champion_value is not None and not math.isnan(champion_value) and value is not None:
        floor = champion[metric] - tolerance
        if value < floor:
            failures.append(
                f"{metric} {value:.4f} trails the champion's {champion[metric]:.4f} by more than {tolerance:g}"
            )
    return GateDecision(
        accepted=not failures or forced_reason is not None,
        metric=metric,
        challenger=dict(challenger),
        champion=None if champion is None else dict(champion),
        thresholds=dict(thresholds),
        tolerance=tolerance,
        failures=failures,
        forced_reason=forced_reason,
    )


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
