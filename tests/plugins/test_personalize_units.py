"""Pure parts of the provider layer: schema comparison, run-scoped names, retry defaults, links."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import pytest
from personalize.hooks import PersonalizeEventsHook, PersonalizeHook, PersonalizeRuntimeHook
from personalize.kinds import CAMPAIGN, SOLUTION_VERSION, effective_status, failure_reason, schema_differences
from personalize.links import PersonalizeCampaignLink, console_arn
from personalize.operators import attempt_name, run_scoped_name

INTERACTIONS = {
    "type": "record",
    "name": "Interactions",
    "namespace": "com.amazonaws.personalize.schema",
    "fields": [
        {"name": "USER_ID", "type": "string"},
        {"name": "ITEM_ID", "type": "string"},
        {"name": "TIMESTAMP", "type": "long"},
    ],
    "version": "1.0",
}


def test_identical_schemas_have_no_differences_whatever_the_formatting():
    assert schema_differences(json.dumps(INTERACTIONS), json.dumps(INTERACTIONS, indent=4)) == []


def test_schema_differences_name_each_field():
    changed = json.loads(json.dumps(INTERACTIONS))
    changed["fields"][2]["type"] = "int"
    changed["fields"].append({"name": "EVENT_TYPE", "type": "string"})
    del changed["fields"][1]
    differences = schema_differences(json.dumps(INTERACTIONS), json.dumps(changed))
    assert differences == [
        "field EVENT_TYPE added",
        "field ITEM_ID removed",
        "field TIMESTAMP type 'long' -> 'int'",
    ]


def test_run_scoped_name_is_stable_per_run_and_valid_for_personalize():
    def context(run_id, map_index=-1):
        ti = SimpleNamespace(dag_id="personalize_train", task_id="train", run_id=run_id, map_index=map_index)
        return {"ti": ti}

    first = run_scoped_name(context("scheduled__2026-01-01T00:00:00+00:00"), "train solution.version")
    assert first == run_scoped_name(context("scheduled__2026-01-01T00:00:00+00:00"), "train solution.version")
    assert first != run_scoped_name(context("scheduled__2026-01-02T00:00:00+00:00"), "train solution.version")
    assert first != run_scoped_name(
        context("scheduled__2026-01-01T00:00:00+00:00", 3), "train solution.version"
    )
    long_name = run_scoped_name(context("manual__x"), "x" * 200)
    for name in (first, long_name):
        assert re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9\-_]*", name) and len(name) <= 63, name


PERSONALIZE_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9\-_]*")


def assert_valid_attempt_chain(names: list[str]) -> None:
    for name in names:
        assert PERSONALIZE_NAME.fullmatch(name) and len(name) <= 63, name
    assert len(set(names)) == len(names), names


def test_attempt_names_start_with_the_name_and_stay_valid_and_distinct():
    short = [attempt_name("ingest-2026-01-01-interactions", k) for k in range(1, 11)]
    assert short[:3] == [
        "ingest-2026-01-01-interactions",
        "ingest-2026-01-01-interactions-a2",
        "ingest-2026-01-01-interactions-a3",
    ]
    assert_valid_attempt_chain(short)

    exactly_full = "j" * 63
    chain = [attempt_name(exactly_full, k) for k in range(1, 11)]
    assert chain[0] == exactly_full
    assert chain[1].endswith("-a2") and chain[9].endswith("-a10")
    assert_valid_attempt_chain(chain)
    # Two long names that differ only past the cut keep distinct attempt names.
    other = "j" * 62 + "k"
    assert attempt_name(other, 2) != chain[1]
    assert_valid_attempt_chain(chain + [attempt_name(other, k) for k in range(2, 11)])
    with pytest.raises(ValueError, match="start at 1"):
        attempt_name("x", 0)


def test_run_scoped_attempt_names_cut_the_readable_part_and_keep_the_digest():
    ti = SimpleNamespace(
        dag_id="personalize_train", task_id="train", run_id="scheduled__2026-01-01", map_index=-1
    )
    for prefix in ("train", "t" * 200):
        chain = [run_scoped_name({"ti": ti}, prefix, attempt=k) for k in range(1, 11)]
        assert chain[0] == run_scoped_name({"ti": ti}, prefix)
        digest = chain[0].rsplit("-", 1)[1]
        assert len(digest) == 16
        for k, name in enumerate(chain[1:], start=2):
            assert name.endswith(f"-{digest}-a{k}"), name
        assert_valid_attempt_chain(chain)


def test_hooks_default_to_standard_retries_unless_configured():
    for hook_class in (PersonalizeHook, PersonalizeRuntimeHook, PersonalizeEventsHook):
        assert hook_class(aws_conn_id=None).config.retries == {"mode": "standard", "max_attempts": 10}
    configured = PersonalizeHook(
        aws_conn_id=None, config={"retries": {"mode": "adaptive", "max_attempts": 4}}
    )
    assert configured.config.retries == {"mode": "adaptive", "max_attempts": 4}


def test_campaign_status_reflects_an_unsettled_update():
    campaign = {
        "status": "ACTIVE",
        "latestCampaignUpdate": {"status": "CREATE FAILED", "failureReason": "boom"},
    }
    assert effective_status(CAMPAIGN, campaign) == "CREATE FAILED"
    assert failure_reason(CAMPAIGN, campaign) == "boom"
    assert effective_status(CAMPAIGN, {"status": "ACTIVE"}) == "ACTIVE"
    assert effective_status(SOLUTION_VERSION, {"status": "CREATE STOPPED"}) == "CREATE STOPPED"
    assert (
        failure_reason(SOLUTION_VERSION, {"status": "CREATE FAILED"}) == "Personalize gave no failureReason"
    )


def test_campaign_link_points_into_the_dataset_group_console():
    group = "arn:aws:personalize:eu-west-1:123456789012:dataset-group/retail"
    campaign = "arn:aws:personalize:eu-west-1:123456789012:campaign/retail-live"
    url = PersonalizeCampaignLink().format_link(
        region_name="eu-west-1",
        aws_domain="aws.amazon.com",
        dataset_group=console_arn(group),
        campaign=console_arn(campaign),
    )
    assert url == (
        "https://console.aws.amazon.com/personalize/home?region=eu-west-1#"
        "arn:aws:personalize:eu-west-1:123456789012:dataset-group$retail/campaignDetails/"
        "arn:aws:personalize:eu-west-1:123456789012:campaign$retail-live"
    )


def test_execute_complete_rejects_a_missing_or_foreign_event():
    from airflow.providers.common.compat.sdk import AirflowException
    from personalize.triggers import validated_resource

    with pytest.raises(AirflowException, match="event is None"):
        validated_resource(None)
    with pytest.raises(AirflowException, match="Not an event of a Personalize trigger"):
        validated_resource({"status": "success", "job_name": "from another provider"})
    with pytest.raises(AirflowException, match="Not an event of a Personalize trigger"):
        validated_resource({"status": "success", "resource": {"arn": "arn:x", "kind": "widget"}})
    event = {"status": "error", "message": "boom", "resource": {"arn": "arn:x", "kind": "campaign"}}
    assert validated_resource(event) == {"arn": "arn:x", "kind": "campaign", "resume_state": {}}


def test_trigger_serialises_to_what_rebuilds_it():
    from airflow.sdk.module_loading import import_string
    from personalize.triggers import PersonalizeCampaignTrigger

    trigger = PersonalizeCampaignTrigger(
        arn="arn:aws:personalize:us-east-1:1:campaign/c",
        resume_state={"round": 2},
        waiter_delay=5,
        waiter_max_attempts=7,
        aws_conn_id="aws_x",
        region_name="eu-west-1",
        botocore_config={"retries": {"mode": "adaptive"}},
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "personalize.triggers.PersonalizeCampaignTrigger"
    rebuilt = import_string(classpath)(**json.loads(json.dumps(kwargs)))
    assert rebuilt.serialize() == (classpath, kwargs)
    assert rebuilt.waiter_name == "campaign_active"
    assert rebuilt.waiter_args == {"campaignArn": "arn:aws:personalize:us-east-1:1:campaign/c"}
    assert rebuilt.hook().config.retries == {"mode": "adaptive"}
