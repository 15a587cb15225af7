"""The replay gate: challenger and champion scored on the same held-out users and window
(replay.py), with bootstrap intervals (replay_stats.py). Pure, like gate.py.

Rules, in order, each named in the decision text:
- thresholds: every configured minimum applies to the challenger's replay value;
- champion rule `auto` (gate.tolerance: auto): reject only when the whole interval of
  challenger - champion on the gate metric lies below 0, i.e. the challenger is worse beyond the
  noise; a challenger as good as the champion passes however the draw falls;
- champion rule `tolerance T` (a number): reject when challenger - champion < -T, as the offline
  gate does, but on the same users and window;
- baseline (when min_lift is given: the solution's gate has a baseline): the challenger must reach
  min_lift x the baseline's replay value; no baseline scored fails the rule.
A forced deployment is accepted and still lists what failed. The decision's dict has the offline
GateDecision's keys (verdict, summary, table, challenger, champion, ...), so keep_champion, the
notifications and the report read either.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from include.pipeline.replay_stats import Interval, ReplayResult

CHALLENGER, CHAMPION, BASELINE = "challenger", "champion", "baseline"


@dataclass(frozen=True)
class ReplayDecision:
    accepted: bool
    metric: str
    rule: str  # the rule that decided, as people read it
    result: ReplayResult
    thresholds: dict[str, float]
    tolerance: float | str
    window: list[str]  # [start, end) as ISO days
    failures: list[str] = field(default_factory=list)
    forced_reason: str | None = None
    offline: dict[str, dict[str, float]] = field(default_factory=dict)  # role -> GetSolutionMetrics

    @property
    def verdict(self) -> str:
        if self.forced_reason is not None and self.failures:
            return "FORCED"
        return "ACCEPTED" if self.accepted else "REJECTED"

    def summary(self) -> str:
        metrics = self.result.metrics
        line = (
            f"gate {self.verdict} on {self.metric} (replay {self.window[0]}..{self.window[1]}, "
            f"{self.result.users} users; {self.rule}): challenger "
            f"{metrics[CHALLENGER][self.metric].text()}"
        )
        if CHAMPION in metrics:
            line += f" vs champion {metrics[CHAMPION][self.metric].text()}"
        if BASELINE in metrics:
            line += f", baseline {metrics[BASELINE][self.metric].text()}"
        if self.failures:
            line += "; " + "; ".join(self.failures)
        if self.forced_reason is not None:
            line += f"; forced: {self.forced_reason}"
        return line

    def table(self) -> str:
        """Replay metrics of every scored model with intervals, and challenger - champion."""
        roles = [r for r in (CHALLENGER, CHAMPION, BASELINE) if r in self.result.metrics]
        differences = self.result.differences.get(CHALLENGER, {})
        header = ["metric", *roles] + (["challenger - champion"] if differences else [])
        rows = [header]
        names = [self.metric, *sorted(set(self.result.metrics[CHALLENGER]) - {self.metric})]
        for name in names:
            row = [name + (" (gate)" if name == self.metric else "")]
            row += [self.result.metrics[r][name].text() for r in roles]
            if differences:
                row.append(differences[name].text(signed=True))
            rows.append(row)
        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        lines.append(
            f"{self.result.confidence:.0%} bootstrap intervals ({self.result.resamples} resamples over "
            f"{self.result.users} held-out users, paired); {self.rule}; verdict {self.verdict}"
        )
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {
            "evaluation": "replay",
            "accepted": self.accepted,
            "verdict": self.verdict,
            "metric": self.metric,
            "rule": self.rule,
            "challenger": self.result.point(CHALLENGER),
            "champion": self.result.point(CHAMPION) if CHAMPION in self.result.metrics else None,
            "baseline": self.result.point(BASELINE) if BASELINE in self.result.metrics else None,
            "thresholds": self.thresholds,
            "tolerance": self.tolerance,
            "window": self.window,
            "failures": self.failures,
            "forced_reason": self.forced_reason,
            "replay": self.result.as_dict(),
            "offline": self.offline,
            "summary": self.summary(),
            "table": self.table(),
        }


def decide_replay(
    result: ReplayResult,
    *,
    metric: str,
    thresholds: Mapping[str, float],
    tolerance: float | str,
    window: list[str],
    min_lift: float | None = None,
    forced_reason: str | None = None,
    offline: Mapping[str, Mapping[str, float]] | None = None,
) -> ReplayDecision:
    if result.reference != CHAMPION and CHAMPION in result.metrics:
        raise ValueError(f"the replay differences must be taken from the champion, not {result.reference}")
    if isinstance(tolerance, str) and tolerance != "auto":
        raise ValueError(f"tolerance must be a number or 'auto', got {tolerance!r}")
    if not isinstance(tolerance, str) and tolerance < 0:
        raise ValueError(f"gate tolerance must be >= 0, got {tolerance}")
    if forced_reason is not None and not forced_reason.strip():
        raise ValueError("a forced deployment needs a reason")
    challenger = result.metrics[CHALLENGER]
    if metric not in challenger:
        raise ValueError(f"gate metric {metric} is not a replay metric ({sorted(challenger)})")
    failures = [
        f"{name} {challenger[name].value:.4f} < threshold {minimum:g}"
        for name, minimum in sorted(thresholds.items())
        if challenger[name].value < minimum
    ]
    rules = ["thresholds" if thresholds else None]
    difference = result.differences.get(CHALLENGER, {}).get(metric)
    if difference is None:
        rules.append("no champion: thresholds only")
    elif tolerance == "auto":
        rules.append(_auto_rule(difference, failures, metric, result.confidence))
    else:
        rules.append(f"rule tolerance {tolerance:g}: challenger - champion {difference.text(signed=True)}")
        if difference.value < -tolerance:
            failures.append(
                f"{metric} trails the champion's by {-difference.value:.4f}, more than tolerance {tolerance:g}"
            )
    baseline = result.metrics.get(BASELINE, {}).get(metric)
    if min_lift is not None:
        if baseline is None:
            # Nothing to compare with is not a pass (as the offline baseline gate, baseline.py).
            rules.append(f"baseline lift {min_lift:g}x: no baseline scored")
            failures.append("no baseline version was scored on the window (none trained before it)")
        else:
            lift = challenger[metric].value / baseline.value if baseline.value > 0 else float("inf")
            rules.append(
                f"baseline lift {min_lift:g}x: challenger / baseline {baseline.text()} = {lift:.2f}x"
            )
            if challenger[metric].value < min_lift * baseline.value:
                failures.append(
                    f"{metric} {challenger[metric].value:.4f} < {min_lift:g} x baseline {baseline.value:.4f}"
                )
    return ReplayDecision(
        accepted=not failures or forced_reason is not None,
        metric=metric,
        rule="; ".join(r for r in rules if r),
        result=result,
        thresholds=dict(thresholds),
        tolerance=tolerance,
        window=list(window),
        failures=failures,
        forced_reason=forced_reason,
        offline={role: dict(values) for role, values in (offline or {}).items()},
    )


def _auto_rule(difference: Interval, failures: list[str], metric: str, confidence: float) -> str:
    interval = f"{confidence:.0%} interval of challenger - champion {difference.text(signed=True)}"
    if difference.high < 0:
        failures.append(f"{metric}: the challenger is worse than the champion beyond the noise ({interval})")
        return f"rule auto: {interval} lies below 0"
    return f"rule auto: {interval} reaches 0, not shown worse"
