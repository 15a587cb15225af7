"""The report's replay section: every scored model's replay metrics with their intervals, and
challenger - champion, as recorded by the replay gate (replay_gate.ReplayDecision.as_dict())."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from personalize_contract.metrics import METRIC_NAMES

from include.pipeline.replay_stats import ReplayResult

ROLES = ("challenger", "champion", "baseline")


def replay_markdown(decision: Mapping[str, Any]) -> list[str]:
    """Markdown lines for a replay decision, or for a version still waiting for its window."""
    start, end = decision["window"]
    if decision.get("replay") is None:
        return [
            "## Replay evaluation",
            "",
            f"Pending: scored against the champion on the window [{start}, {end}) once the dataset holds it.",
        ]
    result = ReplayResult.from_dict(decision["replay"])
    roles = [r for r in ROLES if r in result.metrics]
    difference = result.differences.get("challenger", {})
    lines = [
        f"## Replay metrics: window [{start}, {end}), {result.users} held-out users",
        "",
        f"Same users, same window for every model, none trained on it; {result.confidence:.0%} intervals "
        f"from {result.resamples} bootstrap resamples of the users (paired for the difference). "
        f"Decided by: {decision.get('rule', '-')}.",
        "",
        "| metric | " + " | ".join(roles) + (" | challenger - champion |" if difference else " |"),
        "|---|" + "---:|" * (len(roles) + bool(difference)),
    ]
    gate = decision.get("metric")
    names = [n for n in METRIC_NAMES if n in result.metrics["challenger"]]
    for name in names:
        label = f"**{name}** (gate)" if name == gate else name
        cells = [result.metrics[r][name].text() for r in roles]
        if difference:
            cells.append(difference[name].text(signed=True))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines
