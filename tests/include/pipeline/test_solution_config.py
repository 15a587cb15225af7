"""`solutions:`: several use cases per dataset group; the one-solution form is shorthand for one entry."""

from __future__ import annotations

import pytest

from include.pipeline.config import ConfigError, load_config
from tests.include.pipeline.test_config import demo_dict, write


def as_list(data: dict) -> dict:
    """The demo config written in the list form the shorthand stands for."""
    data = dict(data)
    entry = {**data.pop("solution"), "campaign": data.pop("campaign"), "batch": data.pop("batch_inference")}
    return {**data, "solutions": [entry]}


def three_solutions() -> dict:
    data = as_list(demo_dict())
    data["solutions"] += [
        {"name": "similar", "recipe": "aws-similar-items", "campaign": {"name": "similar-campaign"}},
        {
            "name": "ranking",
            "recipe": "aws-personalized-ranking",
            "batch": {"num_results": 10},
            "gate": {
                "metric": "normalized_discounted_cumulative_gain_at_10",
                "baseline": "popularity-count",
                "min_lift": 1.2,
            },
        },
    ]
    return data


def test_the_shorthand_is_a_one_entry_list(tmp_path):
    short = load_config(write(tmp_path, demo_dict(), "short.yaml"))
    listed = load_config(write(tmp_path, as_list(demo_dict()), "listed.yaml"))
    assert short.solutions == listed.solutions
    assert short.personalize_solutions() == listed.personalize_solutions()
    (entry,) = listed.solutions
    assert entry.campaign.name == "demo-retail-home" and entry.batch.filter == "demo-retail-exclude-purchased"
    assert entry.gate == listed.gate  # no gate of its own: the top-level one
    assert listed.solution is None and short.solution.name == entry.name


def test_each_solution_has_its_serving_and_gate_and_the_baseline_is_created(tmp_path):
    config = load_config(write(tmp_path, three_solutions()))
    names = [s.name for s in config.solutions]
    assert names == ["demo-retail-user-personalization", "similar", "ranking"]
    ranking = config.solution_named("ranking")
    assert ranking.campaign is None and ranking.batch.num_results == 10
    assert ranking.gate.baseline == "popularity-count" and ranking.gate.min_lift == 1.2
    assert config.solution_named("similar").gate.baseline is None
    created = config.personalize_solutions()
    assert [s["name"] for s in created] == [*names, "demo-retail-baseline-popularity"]
    assert created[-1]["recipe_arn"].endswith("/aws-popularity-count")
    view = config.for_solution("similar")
    assert view.solution.name == "similar" and view.campaign.name == "similar-campaign"
    assert [s.name for s in view.solutions] == ["similar"]


def test_without_a_baseline_gate_no_baseline_solution(tmp_path):
    assert load_config(write(tmp_path, demo_dict())).baseline_solution is None


def test_resource_tags_get_the_pipeline_tag(tmp_path):
    data = demo_dict()
    data["resource_tags"] = {"team": "ml", "cost-center": "42"}
    config = load_config(write(tmp_path, data))
    assert config.all_resource_tags == {"cost-center": "42", "pipeline": "demo_retail", "team": "ml"}


@pytest.mark.parametrize(
    ("change", "key", "words"),
    [
        (
            lambda d: d["solutions"][2].update(name="similar"),
            "solutions.2.name",
            "already used by solutions.1.name",
        ),
        (
            lambda d: d["solutions"][1]["campaign"].update(name="demo-retail-home"),
            "solutions.1.campaign.name",
            "already used by solutions.0.campaign.name",
        ),
        (
            lambda d: d["solutions"][1]["campaign"].update(name="bad name!"),
            "solutions.1.campaign.name",
            "pattern",
        ),
        (lambda d: d["solutions"][1].pop("campaign"), "solutions.1", "neither by a campaign nor by batch"),
        (
            lambda d: d["solutions"][2]["batch"].update(filter="nope"),
            "solutions.2.batch.filter",
            "not one of filters",
        ),
        (
            lambda d: d["solutions"][2]["gate"].update(baseline="random"),
            "solutions.2.gate.baseline",
            "popularity-count",
        ),
        (lambda d: d["solutions"][1].update(gate={"min_lift": 1.5}), "solutions.1.gate", "baseline"),
        (lambda d: d["solutions"][1].update(recipe="aws-nope"), "solutions.1.recipe", "unknown recipe"),
        (lambda d: d["solutions"][1].update(camapign={}), "solutions.1.camapign", "unknown key"),
        (lambda d: d.update(solution={"name": "x"}), "solution", "cannot be mixed"),
        (lambda d: d.update(solutions=[]), "solutions", "at least 1"),
        (lambda d: d.pop("solutions"), "solutions", "required"),
        (
            # Replay scores lists for users: similar-items is asked by item.
            lambda d: d["solutions"][1].update(gate={"evaluation": "replay"}),
            "solutions.1.gate.evaluation",
            "asked by item: give this solution its own gate with evaluation: offline",
        ),
        (
            lambda d: d["solutions"][2]["gate"].update(evaluation="replay"),
            "solutions.2.gate.evaluation",
            "asked to rank a list",
        ),
        (
            lambda d: d["solutions"][1].update(
                name="demo-retail-baseline-popularity", gate={"baseline": "popularity-count"}
            ),
            "solutions.1.name",
            "baseline solution",
        ),
    ],
)
def test_a_bad_entry_names_its_key(tmp_path, change, key, words):
    data = three_solutions()
    change(data)
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    message = str(raised.value)
    assert f"{path}: {key}" in message, message
    assert words in message, message


def test_the_shorthand_needs_its_campaign(tmp_path):
    data = demo_dict()
    del data["campaign"]
    with pytest.raises(ConfigError, match=r"campaign: required with the shorthand solution: .*solutions:"):
        load_config(write(tmp_path, data))


def test_several_solutions_each_with_its_replay_gate_and_a_baseline(tmp_path):
    data = three_solutions()
    replay = {"evaluation": "replay", "tolerance": "auto", "holdout_days": 3}
    data["solutions"][0]["gate"] = {**replay, "baseline": "popularity-count", "min_lift": 1.1}
    data["solutions"].append(
        {"name": "trending", "recipe": "aws-trending-now", "batch": {}, "gate": {**replay, "holdout_days": 5}}
    )
    config = load_config(write(tmp_path, data))
    first, trending = config.solutions[0].gate, config.solution_named("trending").gate
    assert (first.evaluation, first.baseline, first.min_lift, first.holdout_days) == (
        "replay",
        "popularity-count",
        1.1,
        3,
    )
    assert (trending.evaluation, trending.holdout_days, trending.baseline) == ("replay", 5, None)
    assert config.solution_named("similar").gate.evaluation == "offline"
    # One baseline solution for every gate that asks (the replay one and the ranking one).
    assert [s["name"] for s in config.personalize_solutions()][-1] == "demo-retail-baseline-popularity"
    assert config.for_solution("trending").gate.holdout_days == 5
