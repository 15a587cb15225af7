"""The metric gate: thresholds, the champion rule with its tolerance, and forced deployments."""

from __future__ import annotations

import pytest

from include.pipeline.gate import decide

METRIC = "precision_at_25"


def gate(challenger, champion, *, thresholds=None, tolerance=0.01, forced_reason=None):
    return decide(
        challenger,
        champion,
        metric=METRIC,
        thresholds={METRIC: 0.05} if thresholds is None else thresholds,
        tolerance=tolerance,
        forced_reason=forced_reason,
    )


def test_first_model_only_needs_the_thresholds():
    decision = gate({METRIC: 0.08, "coverage": 0.3}, None)
    assert decision.accepted and decision.verdict == "ACCEPTED" and decision.failures == []


def test_below_the_threshold_is_rejected_naming_metric_and_values():
    decision = gate({METRIC: 0.04}, None)
    assert not decision.accepted
    assert decision.failures == ["precision_at_25 0.0400 < threshold 0.05"]


def test_challenger_within_tolerance_of_the_champion_passes():
    assert gate({METRIC: 0.111}, {METRIC: 0.12}, tolerance=0.01).accepted


def test_challenger_worse_than_champion_by_more_than_tolerance_is_rejected():
    decision = gate({METRIC: 0.10}, {METRIC: 0.12}, tolerance=0.01)
    assert not decision.accepted
    assert "trails the champion's 0.1200 by more than 0.01" in decision.failures[0]
    assert decision.summary().startswith(
        "gate REJECTED on precision_at_25: challenger 0.1000 vs champion 0.1200"
    )


def test_zero_tolerance_accepts_a_tie_and_rejects_any_regression():
    assert gate({METRIC: 0.12}, {METRIC: 0.12}, tolerance=0).accepted
    assert not gate({METRIC: 0.1199}, {METRIC: 0.12}, tolerance=0).accepted


def test_every_threshold_applies_not_only_the_gate_metric():
    decision = gate({METRIC: 0.2, "coverage": 0.01}, None, thresholds={METRIC: 0.05, "coverage": 0.1})
    assert not decision.accepted and decision.failures == ["coverage 0.0100 < threshold 0.1"]


def test_a_missing_metric_is_a_failure_not_a_pass():
    decision = gate({"coverage": 0.5}, {METRIC: 0.1})
    assert not decision.accepted
    assert "precision_at_25 missing from the challenger's metrics" in decision.failures[0]
    assert not gate({"coverage": 0.5}, None, thresholds={}).accepted


def test_champion_without_the_gate_metric_leaves_only_thresholds():
    assert gate({METRIC: 0.06}, {"coverage": 0.9}).accepted


def test_forced_deploy_is_accepted_but_keeps_what_failed():
    decision = gate({METRIC: 0.01}, {METRIC: 0.2}, forced_reason="hotfix for catalogue change")
    assert decision.accepted and decision.forced and decision.verdict == "FORCED"
    assert len(decision.failures) == 2
    assert "forced: hotfix for catalogue change" in decision.summary()


def test_force_needs_a_reason_and_tolerance_cannot_be_negative():
    with pytest.raises(ValueError, match="needs a reason"):
        gate({METRIC: 0.1}, None, forced_reason="  ")
    with pytest.raises(ValueError, match="tolerance"):
        gate({METRIC: 0.1}, None, tolerance=-0.1)


def test_table_shows_values_side_by_side_with_the_check():
    decision = gate({METRIC: 0.10, "coverage": 0.4}, {METRIC: 0.12, "coverage": 0.3}, tolerance=0.01)
    lines = decision.table().splitlines()
    assert lines[0].split() == ["metric", "challenger", "champion", "minimum", "check"]
    gate_row = next(line for line in lines if line.startswith("precision_at_25 (gate)"))
    assert gate_row.split()[2:] == ["0.1000", "0.1200", "0.0500", "FAIL"]
    coverage_row = next(line for line in lines if line.startswith("coverage"))
    assert coverage_row.split() == ["coverage", "0.4000", "0.3000", "-", "-"]
    assert lines[-1].endswith("verdict REJECTED")


def test_decision_serialises_for_history_and_xcom():
    record = gate({METRIC: 0.08}, {METRIC: 0.07}).as_dict()
    assert record["verdict"] == "ACCEPTED"
    assert record["challenger"] == {METRIC: 0.08} and record["champion"] == {METRIC: 0.07}
    assert record["table"].startswith("metric") and record["table"].endswith("verdict ACCEPTED")


def test_a_metric_that_is_not_a_number_fails_instead_of_passing_every_comparison():
    nan = float("nan")
    decision = gate({METRIC: nan}, {METRIC: 0.08})
    assert not decision.accepted
    assert any(METRIC in failure and "not a number" in failure for failure in decision.failures)
    # Not in the thresholds, but the gate metric all the same.
    assert not gate({METRIC: nan}, None, thresholds={}).accepted
