"""Smoke-test requests and batch input lines per recipe type, and the baseline (lift) gate."""

from __future__ import annotations

import math

import pytest

from include.pipeline.baseline import apply_baseline, lift
from include.pipeline.gate import decide
from include.pipeline.serving import Filter, batch_input_lines, recommended_items, smoke_requests

CAMPAIGN = "arn:aws:personalize:us-east-1:000000000000:campaign/c"


@pytest.mark.parametrize("recipe", ["aws-user-personalization", "aws-trending-now", "aws-popularity-count"])
def test_user_recipes_are_asked_by_user_id(recipe):
    flt = Filter("no-purchased", "arn:filter", {"C": '"a"'})
    requests = smoke_requests(
        recipe, CAMPAIGN, users=["u1", "u2"], items=["i1"], num_results=5, filters=[flt]
    )
    assert [r.label for r in requests] == [
        "user u1 with no filter", "user u1 with no-purchased", "user u2 with no filter", "user u2 with no-purchased",
    ]  # fmt: skip
    assert {r.operation for r in requests} == {"get_recommendations"}
    assert requests[1].kwargs == {
        "campaignArn": CAMPAIGN, "userId": "u1", "numResults": 5, "filterArn": "arn:filter", "filterValues": {"C": '"a"'},
    }  # fmt: skip


@pytest.mark.parametrize("recipe", ["aws-similar-items", "arn:aws:personalize:::recipe/aws-sims"])
def test_related_item_recipes_are_asked_by_item_id(recipe):
    (request,) = smoke_requests(recipe, CAMPAIGN, users=["u1"], items=["i9"], num_results=3)
    assert request.operation == "get_recommendations"
    assert request.kwargs == {"campaignArn": CAMPAIGN, "itemId": "i9", "numResults": 3}
    assert list(batch_input_lines(recipe, users=["u1"], items=["i9", "i8"])) == [
        {"itemId": "i9"},
        {"itemId": "i8"},
    ]


def test_ranking_is_asked_with_a_user_and_an_input_list():
    (request,) = smoke_requests(
        "aws-personalized-ranking", CAMPAIGN, users=["u1"], items=["a", "b"], num_results=3
    )
    assert request.operation == "get_personalized_ranking"
    assert request.kwargs == {"campaignArn": CAMPAIGN, "userId": "u1", "inputList": ["a", "b"]}
    lines = list(batch_input_lines("aws-personalized-ranking-v2", users=["u1", "u2"], items=["a", "b"]))
    assert lines == [{"userId": "u1", "itemList": ["a", "b"]}, {"userId": "u2", "itemList": ["a", "b"]}]
    assert recommended_items({"personalizedRanking": [{"itemId": "b"}, {"itemId": "a"}]}) == ["b", "a"]


def test_user_recipes_batch_lines_are_users():
    assert list(batch_input_lines("aws-user-personalization", users=["u1"], items=["a"])) == [
        {"userId": "u1"}
    ]
    assert recommended_items({"itemList": [{"itemId": "x"}]}) == ["x"]


def test_a_recipe_without_a_known_input_is_refused():
    with pytest.raises(ValueError, match="aws-next-best-action: no smoke test or batch input"):
        smoke_requests("aws-next-best-action", CAMPAIGN, users=["u"], items=[], num_results=1)


def gate(challenger: float, champion: float | None = None, **kwargs):
    return decide(
        {"precision_at_25": challenger},
        None if champion is None else {"precision_at_25": champion},
        metric="precision_at_25",
        thresholds={},
        tolerance=0.0,
        **kwargs,
    )


def test_a_challenger_below_the_lift_over_popularity_is_rejected():
    result = apply_baseline(gate(0.11), {"precision_at_25": 0.10}, min_lift=1.2, baseline_arn="arn:base")
    assert result["accepted"] is False and result["verdict"] == "REJECTED"
    assert "lift over the popularity baseline 1.10x < min_lift 1.2x" in result["summary"]
    assert result["baseline"] == {"precision_at_25": 0.10} and result["lift"] == pytest.approx(1.1)
    assert (
        "baseline rule: precision_at_25 challenger 0.1100 / baseline 0.1000 = lift 1.10x >= 1.2x: FAIL"
        in result["table"]
    )


def test_a_challenger_with_the_lift_passes_and_other_failures_still_count():
    assert apply_baseline(gate(0.13), {"precision_at_25": 0.10}, min_lift=1.2, baseline_arn="b")["accepted"]
    worse_than_champion = apply_baseline(
        gate(0.13, 0.2), {"precision_at_25": 0.10}, min_lift=1.2, baseline_arn="b"
    )
    assert (
        worse_than_champion["verdict"] == "REJECTED"
        and "trails the champion" in worse_than_champion["summary"]
    )


def test_no_baseline_is_a_failure_but_forcing_still_deploys():
    assert not apply_baseline(gate(0.5), None, min_lift=1.2, baseline_arn=None)["accepted"]
    forced = apply_baseline(gate(0.01, forced_reason="hotfix"), None, min_lift=1.2, baseline_arn=None)
    assert forced["accepted"] and forced["verdict"] == "FORCED"


def test_lift_edges():
    assert lift(0.2, 0.1) == pytest.approx(2.0)
    assert lift(0.1, 0.0) == math.inf and lift(0.0, 0.0) is None
    assert lift(None, 0.1) is None and lift(math.nan, 0.1) is None
