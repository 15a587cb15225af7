"""The replay gate's rules, on literal intervals, and the config keys that select it."""

from __future__ import annotations

import pytest
import yaml

from include.pipeline.config import CONFIG_DIR, ConfigError, load_config
from include.pipeline.replay_gate import decide_replay
from include.pipeline.replay_stats import Interval, ReplayResult
from tests.demo_config import one_solution

METRIC = "normalized_discounted_cumulative_gain_at_25"
WINDOW = ["2026-03-04", "2026-03-11"]


def result(challenger: float, champion: float | None, difference: tuple[float, float] | None, baseline=None):
    metrics = {"challenger": {METRIC: Interval(challenger, challenger - 0.02, challenger + 0.02)}}
    differences = {}
    if champion is not None:
        metrics["champion"] = {METRIC: Interval(champion, champion - 0.02, champion + 0.02)}
        differences["challenger"] = {METRIC: Interval(challenger - champion, *difference)}
    if baseline is not None:
        metrics["baseline"] = {METRIC: Interval(baseline, baseline - 0.01, baseline + 0.01)}
    return ReplayResult(metrics, differences, "champion", 500, 1000, 0.95, 1)


def decide(res, **kwargs):
    kwargs.setdefault("thresholds", {})
    kwargs.setdefault("tolerance", "auto")
    return decide_replay(res, metric=METRIC, window=WINDOW, **kwargs)


def test_auto_accepts_a_challenger_slightly_worse_within_the_noise():
    decision = decide(result(0.158, 0.160, (-0.009, 0.005)))
    assert decision.accepted and decision.verdict == "ACCEPTED"
    assert "rule auto" in decision.rule and "reaches 0, not shown worse" in decision.rule
    assert "rule auto" in decision.summary() and "2026-03-04..2026-03-11" in decision.summary()


def test_auto_rejects_a_challenger_worse_beyond_the_interval_and_says_so():
    decision = decide(result(0.120, 0.160, (-0.052, -0.028)))
    assert not decision.accepted and decision.verdict == "REJECTED"
    assert "lies below 0" in decision.rule
    assert "worse than the champion beyond the noise" in decision.summary()
    assert "challenger - champion" in decision.table() and "-0.0400 [-0.0520, -0.0280]" in decision.table()


def test_numeric_tolerance_uses_the_replay_difference():
    # Difference -0.004: within tolerance 0.005, beyond tolerance 0.001 (interval ignored).
    assert decide(result(0.156, 0.160, (-0.01, 0.002)), tolerance=0.005).accepted
    rejected = decide(result(0.156, 0.160, (-0.01, 0.002)), tolerance=0.001)
    assert not rejected.accepted and "rule tolerance 0.001" in rejected.rule
    assert "more than tolerance 0.001" in rejected.summary()


def test_thresholds_apply_to_replay_values_and_without_champion_they_alone_decide():
    decision = decide(result(0.05, None, None), thresholds={METRIC: 0.1})
    assert not decision.accepted and "no champion: thresholds only" in decision.rule
    assert f"{METRIC} 0.0500 < threshold 0.1" in decision.failures[0]
    assert decide(result(0.15, None, None), thresholds={METRIC: 0.1}).accepted


def test_baseline_lift_rule_and_forced_deployment():
    decision = decide(result(0.11, 0.10, (-0.01, 0.03), baseline=0.10), min_lift=1.2)
    assert not decision.accepted and "baseline lift 1.2x" in decision.rule
    forced = decide(
        result(0.11, 0.10, (-0.01, 0.03), baseline=0.10), min_lift=1.2, forced_reason="incident 7"
    )
    assert forced.accepted and forced.verdict == "FORCED"
    as_dict = forced.as_dict()
    assert as_dict["baseline"] == {METRIC: 0.10} and as_dict["evaluation"] == "replay"
    assert as_dict["replay"]["differences"]["challenger"][METRIC] == [0.01, -0.01, 0.03]


def test_bad_tolerance_is_refused():
    with pytest.raises(ValueError, match="number or 'auto'"):
        decide(result(0.1, 0.1, (0, 0)), tolerance="often")


def _config(tmp_path, **gate):
    data = one_solution(yaml.safe_load((CONFIG_DIR / "demo_retail.yaml").read_text(encoding="utf-8")))
    data["gate"].update(gate)
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_config_replay_keys_and_defaults(tmp_path):
    config = load_config(_config(tmp_path, evaluation="replay", tolerance="auto", holdout_days=3))
    assert config.gate.evaluation == "replay" and config.gate.tolerance == "auto"
    assert config.gate.holdout_days == 3 and config.gate.replay_deploy == "as_trained"
    assert config.gate.replay_users == 1000 and config.gate.replay_resamples == 1000
    assert load_config(_config(tmp_path)).gate.evaluation == "offline"


@pytest.mark.parametrize(
    ("gate", "message"),
    [
        ({"tolerance": "auto"}, "gate: tolerance 'auto' needs evaluation: replay"),
        ({"evaluation": "holdout"}, "gate.evaluation: Input should be 'offline' or 'replay'"),
        ({"holdout_days": 0}, "gate.holdout_days: Input should be greater than or equal to 1"),
        ({"replay_users": 10}, "gate.replay_users: Input should be greater than or equal to 50"),
        ({"replay_resamples": 5}, "gate.replay_resamples: Input should be greater than or equal to 100"),
        ({"replay_deploy": "later"}, "gate.replay_deploy: Input should be 'as_trained' or 'retrain'"),
        ({"tolerance": "big"}, "gate.tolerance"),
    ],
)
def test_config_errors_name_the_field(tmp_path, gate, message):
    with pytest.raises(ConfigError) as err:
        load_config(_config(tmp_path, **gate))
    assert message in str(err.value)


def test_report_shows_offline_and_replay_metrics_with_intervals_and_a_pending_version():
    from include.pipeline.report import build_report

    offline = {"challenger": {METRIC: 0.31, "precision_at_25": 0.05}, "champion": {METRIC: 0.29}}
    decision = decide(result(0.158, 0.160, (-0.009, 0.005)), offline=offline).as_dict()
    records = [
        {"run_id": "r1", "solution_version_arn": "sv/1", "metrics": {METRIC: 0.29}, "decision": "ACCEPTED"},
        {
            "run_id": "r2",
            "solution_version_arn": "sv/2",
            "metrics": offline["challenger"],
            "decision": {"verdict": "PENDING", "window": WINDOW, "summary": "PENDING replay"},
            "deployed": False,
        },
        {
            "run_id": "r3",
            "solution_version_arn": "sv/2",
            "metrics": offline["challenger"],
            "champion_metrics": offline["champion"],
            "decision": decision,
            "deployed": True,
            "replay_of": "sv/2",
        },
    ]
    pending = build_report(records, "r2").markdown
    assert "Pending: scored against the champion on the window [2026-03-04, 2026-03-11)" in pending
    report = build_report(records, "r3")
    text = report.markdown
    # Offline (GetSolutionMetrics) table still there, with both versions' values.
    assert f"| {METRIC} | 0.3100 | 0.2900 | +0.0200 |" in text
    assert "## Replay metrics: window [2026-03-04, 2026-03-11), 500 held-out users" in text
    assert (
        f"| **{METRIC}** (gate) | 0.1580 [0.1380, 0.1780] | 0.1600 [0.1400, 0.1800] | -0.0020 [-0.0090, +0.0050] |"
        in text
    )
    assert "rule auto" in text
    assert report.summary["replay"]["users"] == 500


def test_rejections_in_a_row_count_across_replay_pending_lines():
    from include.pipeline.notify import trailing_rejections

    rejected, pending = {"decision": {"verdict": "REJECTED"}}, {"decision": {"verdict": "PENDING"}}
    superseded = {"decision": {"verdict": "SUPERSEDED"}}
    # Replay mode alternates: a decision, then the next challenger waiting for its window.
    assert trailing_rejections([rejected, pending, rejected, superseded, pending]) == 2
    assert trailing_rejections([rejected, {"decision": {"verdict": "ACCEPTED"}}, pending]) == 0


def test_a_baseline_gate_without_a_scored_baseline_rejects_and_the_rule_shows_the_baseline():
    missing = decide(result(0.11, 0.10, (-0.01, 0.03)), min_lift=1.2)
    assert not missing.accepted and "no baseline version was scored" in missing.summary()
    assert "no baseline scored" in missing.rule
    passed = decide(result(0.13, 0.10, (-0.01, 0.03), baseline=0.10), min_lift=1.2)
    # 0.13 / 0.10 = 1.30x >= 1.2x; the rule shows the baseline's interval [0.09, 0.11].
    assert passed.accepted and "1.30x" in passed.rule and "0.1000 [0.0900, 0.1100]" in passed.rule
    assert "baseline 0.1000 [0.0900, 0.1100]" in passed.summary()
