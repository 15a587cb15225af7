"""The custom waiters: well-formed for the provider, fail fast on failure, succeed only when ACTIVE.

botocore's Stubber answers the describe calls, validating every canned response against the
service's output shapes, so the waiters are exercised exactly as botocore runs them.
"""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import WaiterError
from botocore.stub import Stubber
from personalize.hooks import PersonalizeHook
from personalize.kinds import FAILED_STATUSES, RESOURCE_KINDS

ARN = "arn:aws:personalize:us-east-1:123456789012:thing/example"


@pytest.fixture
def hook():
    return PersonalizeHook(aws_conn_id=None, region_name="us-east-1")


@pytest.fixture
def waiter_model(hook):
    return json.loads(hook.waiter_path.read_text())


def describe_response(kind, status, **extra):
    return {kind.response_key: {kind.arn_parameter: ARN, "status": status, **extra}}


def run_waiter(hook, kind, responses):
    """Run the kind's waiter against canned describe responses, one per attempt."""
    client = hook.conn
    with Stubber(client) as stubber:
        for response in responses:
            if isinstance(response, str):
                stubber.add_client_error(
                    kind.describe_method, service_error_code=response, http_status_code=400
                )
            else:
                stubber.add_response(kind.describe_method, response, {kind.arn_parameter: ARN})
        waiter = hook.get_waiter(kind.waiter_name, client=client)
        waiter.wait(**{kind.arn_parameter: ARN}, WaiterConfig={"Delay": 0, "MaxAttempts": len(responses)})
        stubber.assert_no_pending_responses()


def test_every_resource_kind_has_a_waiter_the_provider_can_load(hook, waiter_model):
    assert set(hook.list_waiters()) >= {kind.waiter_name for kind in RESOURCE_KINDS.values()}
    for kind in RESOURCE_KINDS.values():
        definition = waiter_model["waiters"][kind.waiter_name]
        assert definition["operation"] == "Describe" + "".join(
            part.capitalize() for part in kind.describe_method.split("_")[1:]
        )
        # The provider renders every acceptor's "argument" as a template: a missing one is a KeyError.
        assert all("argument" in acceptor for acceptor in definition["acceptors"])
        assert hook.get_waiter(kind.waiter_name) is not None


def test_waiter_failure_statuses_are_the_hooks_failure_statuses(waiter_model):
    for definition in waiter_model["waiters"].values():
        failing = {
            a["expected"]
            for a in definition["acceptors"]
            if a["state"] == "failure" and a["matcher"] == "path"
        }
        assert failing, definition["operation"]
        assert failing <= FAILED_STATUSES
        assert {
            a["expected"]
            for a in definition["acceptors"]
            if a["matcher"] == "error" and a["state"] == "failure"
        } == {"ResourceNotFoundException"}


@pytest.mark.parametrize("kind", list(RESOURCE_KINDS.values()), ids=lambda kind: kind.waiter_name)
def test_waiter_polls_until_active(hook, kind):
    run_waiter(
        hook,
        kind,
        [
            describe_response(kind, "CREATE PENDING"),
            describe_response(kind, "CREATE IN_PROGRESS"),
            describe_response(kind, kind.done_status),
        ],
    )


@pytest.mark.parametrize("kind", list(RESOURCE_KINDS.values()), ids=lambda kind: kind.waiter_name)
def test_waiter_fails_fast_on_create_failed(hook, kind):
    # Two attempts allowed, one response given: the waiter must stop at the first, not poll again.
    with Stubber(hook.conn) as stubber:
        stubber.add_response(
            kind.describe_method,
            describe_response(kind, kind.failed_status),
            {kind.arn_parameter: ARN},
        )
        waiter = hook.get_waiter(kind.waiter_name, client=hook.conn)
        with pytest.raises(WaiterError, match="terminal failure"):
            waiter.wait(**{kind.arn_parameter: ARN}, WaiterConfig={"Delay": 0, "MaxAttempts": 2})


@pytest.mark.parametrize("kind", list(RESOURCE_KINDS.values()), ids=lambda kind: kind.waiter_name)
def test_waiter_fails_fast_when_the_resource_is_missing(hook, kind):
    with pytest.raises(WaiterError, match="terminal failure"):
        run_waiter(hook, kind, ["ResourceNotFoundException"])


def test_batch_inference_waiter_accepts_the_other_failure_spelling(hook):
    kind = RESOURCE_KINDS["batchInferenceJob"]
    with pytest.raises(WaiterError, match="terminal failure"):
        run_waiter(hook, kind, [describe_response(kind, "FAILED", failureReason="bad input")])


def test_solution_version_waiter_fails_when_training_is_stopped(hook):
    kind = RESOURCE_KINDS["solutionVersion"]
    with pytest.raises(WaiterError, match="terminal failure"):
        run_waiter(hook, kind, [describe_response(kind, "CREATE STOPPED")])


def campaign(status, update_status=None, update_reason=None):
    body = {"campaignArn": ARN, "status": status, "solutionVersionArn": ARN + "/v1"}
    if update_status:
        body["latestCampaignUpdate"] = {"status": update_status, "solutionVersionArn": ARN + "/v2"}
        if update_reason:
            body["latestCampaignUpdate"]["failureReason"] = update_reason
    return {"campaign": body}


def test_campaign_waiter_waits_for_the_latest_update(hook):
    kind = RESOURCE_KINDS["campaign"]
    # An ACTIVE campaign whose update is still pending is not done yet.
    run_waiter(
        hook,
        kind,
        [
            campaign("ACTIVE", "CREATE PENDING"),
            campaign("ACTIVE", "CREATE IN_PROGRESS"),
            campaign("ACTIVE", "ACTIVE"),
        ],
    )
    with pytest.raises(WaiterError, match="Max attempts exceeded"):
        run_waiter(hook, kind, [campaign("ACTIVE", "CREATE IN_PROGRESS")])


def test_campaign_waiter_fails_fast_when_the_update_fails(hook):
    with pytest.raises(WaiterError, match="terminal failure"):
        run_waiter(hook, RESOURCE_KINDS["campaign"], [campaign("ACTIVE", "CREATE FAILED", "no capacity")])


def test_campaign_waiter_accepts_a_new_campaign_without_updates(hook):
    run_waiter(hook, RESOURCE_KINDS["campaign"], [campaign("CREATE IN_PROGRESS"), campaign("ACTIVE")])
