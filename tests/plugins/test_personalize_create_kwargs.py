"""Tags on every create and the `extra_create_kwargs` escape hatch, templated and shown as JSON."""

from __future__ import annotations

import pytest
from personalize.create_kwargs import personalize_tags, with_create_kwargs
from personalize.operators import (
    PersonalizeCreateBatchInferenceJobOperator,
    PersonalizeCreateDatasetImportJobOperator,
    PersonalizeCreateSolutionVersionOperator,
    PersonalizeDeployCampaignOperator,
    PersonalizeEnsureResourcesOperator,
)

from tests.plugins.conftest import ensure_operator, make_context, unique_name

OPERATORS = (
    PersonalizeEnsureResourcesOperator,
    PersonalizeCreateDatasetImportJobOperator,
    PersonalizeCreateSolutionVersionOperator,
    PersonalizeDeployCampaignOperator,
    PersonalizeCreateBatchInferenceJobOperator,
)


def test_tags_take_personalizes_shape():
    assert personalize_tags({"team": "recs", "cost-centre": 42}) == [
        {"tagKey": "team", "tagValue": "recs"},
        {"tagKey": "cost-centre", "tagValue": "42"},
    ]


def test_extra_members_are_added_and_a_repeated_member_is_an_error_naming_it():
    params = {"name": "n", "datasetGroupArn": "arn"}
    assert with_create_kwargs("CreateFilter", params, None) == params
    assert with_create_kwargs("CreateFilter", params, {"tags": []}) == {**params, "tags": []}
    with pytest.raises(ValueError, match=r"CreateFilter: extra create kwargs set \['name'\]"):
        with_create_kwargs("CreateFilter", params, {"name": "other", "tags": []})
    with pytest.raises(ValueError, match="must be a mapping"):
        with_create_kwargs("CreateFilter", params, ["tags"])


@pytest.mark.parametrize("operator_class", OPERATORS, ids=lambda c: c.__name__)
def test_every_operator_templates_tags_and_extras_and_renders_dict_fields_as_json(operator_class):
    assert {"tags", "extra_create_kwargs"} <= set(operator_class.template_fields)
    renderers = operator_class.template_fields_renderers
    assert renderers["tags"] == renderers["extra_create_kwargs"] == "json"
    dict_fields = {"datasets", "solutions", "filters", "campaign_config"} & set(
        operator_class.template_fields
    )
    assert all(renderers[name] == "json" for name in dict_fields)


def test_extras_are_templated():
    operator = PersonalizeCreateSolutionVersionOperator(
        task_id="train",
        solution_arn="arn:aws:personalize:us-east-1:123456789012:solution/s",
        tags={"run": "{{ run_id }}"},
        extra_create_kwargs={"tags": [{"tagKey": "day", "tagValue": "{{ ds }}"}]},
    )
    operator.render_template_fields({"run_id": "manual__1", "ds": "2026-12-01"})
    assert operator.tags == {"run": "manual__1"}
    assert operator.extra_create_kwargs == {"tags": [{"tagKey": "day", "tagValue": "2026-12-01"}]}
    # Tags set twice (argument and escape hatch) would silently lose one set: refused.
    with pytest.raises(ValueError, match="tags are set both"):
        operator.create_kwargs(operator.extra_create_kwargs)


def test_ensure_resources_names_an_unknown_resource_in_extras():
    operator = ensure_operator("bad-extra", extra_create_kwargs={"campaign": {"tags": []}})
    with pytest.raises(ValueError, match=r"extra_create_kwargs has unknown keys \['campaign'\]"):
        operator.execute(make_context(operator))


def tags_of(client, arn: str) -> dict[str, str]:
    return {t["tagKey"]: t["tagValue"] for t in client.list_tags_for_resource(resourceArn=arn)["tags"]}


def test_ensure_resources_tags_everything_it_creates_and_passes_extras(
    aws_default_connection, personalize_client
):
    prefix = unique_name("tagged")
    operator = ensure_operator(
        prefix,
        tags={"team": "recs"},
        extra_create_kwargs={"solution": {"performIncrementalUpdate": False}},
    )
    result = operator.execute(make_context(operator))
    arns = [
        result["dataset_group_arn"],
        *result["dataset_arns"].values(),
        *result["solution_arns"].values(),
        *result["filter_arns"].values(),
        result["event_tracker_arn"],
    ]
    assert all(tags_of(personalize_client, arn) == {"team": "recs"} for arn in arns)
    # Schemas take no tags (CreateSchema has no such member): none were sent, so none are there.
    assert all(tags_of(personalize_client, arn) == {} for arn in result["schema_arns"].values())

    # An extra that repeats a member the operator sets fails the task, naming the member.
    clash = ensure_operator(unique_name("clash"), extra_create_kwargs={"filter": {"filterExpression": "x"}})
    with pytest.raises(ValueError, match=r"CreateFilter: extra create kwargs set \['filterExpression'\]"):
        clash.execute(make_context(clash))


def test_single_resource_operators_add_tags_and_extras_to_their_create_call():
    operator = PersonalizeDeployCampaignOperator(
        task_id="deploy",
        campaign_name="c",
        solution_version_arn="arn:aws:personalize:us-east-1:123456789012:solution/s/v1",
        tags={"team": "recs"},
        extra_create_kwargs={"campaignConfig": {"enableMetadataWithRecommendations": True}},
    )
    assert operator.create_params("CreateCampaign", {"name": "c", "minProvisionedTPS": 1}) == {
        "name": "c",
        "minProvisionedTPS": 1,
        "tags": [{"tagKey": "team", "tagValue": "recs"}],
        "campaignConfig": {"enableMetadataWithRecommendations": True},
    }
    with pytest.raises(ValueError, match=r"CreateCampaign: extra create kwargs set \['campaignConfig'\]"):
        operator.create_params("CreateCampaign", {"name": "c", "campaignConfig": {}})


def test_a_created_campaign_carries_the_tasks_tags(trained, personalize_client):
    name = unique_name("tagged-campaign")
    operator = PersonalizeDeployCampaignOperator(
        task_id="deploy",
        campaign_name=name,
        solution_version_arn=trained["version_arn"],
        aws_conn_id=trained["conn_id"],
        tags={"team": "recs", "run": "{{ run_id }}"},
        waiter_delay=1,
        waiter_max_attempts=300,
    )
    operator.render_template_fields({"run_id": "manual__1"})
    campaign_arn = operator.execute(make_context(operator))
    assert tags_of(personalize_client, campaign_arn) == {"team": "recs", "run": "manual__1"}
