"""PersonalizeDeployCampaignOperator against the local Personalize service, in both waiting modes.

Each test also reruns its operator as a cleared task would (same names, same run) and checks
that Personalize holds no second job, version or campaign update afterwards.
"""

from __future__ import annotations

from personalize.operators import (
    PersonalizeCreateSolutionVersionOperator,
    PersonalizeDeployCampaignOperator,
)

from tests.plugins.conftest import (
    FAST,
    make_context,
    unique_name,
)
from tests.plugins.operator_runs import MODES, run_operator


@MODES
def test_deploy_campaign_creates_updates_and_is_a_no_op_when_serving(world, deferrable):
    hook = world["hook"]
    client = hook.conn
    name = unique_name("campaign")

    def deploy(version_arn: str, **kwargs):
        operator = PersonalizeDeployCampaignOperator(
            task_id="deploy",
            campaign_name=name,
            solution_version_arn=version_arn,
            aws_conn_id=world["conn_id"],
            deferrable=deferrable,
            **FAST,
            **kwargs,
        )
        return run_operator(operator, deferrable)

    first_version = world["version_arn"]
    assert hook.get_serving_solution_version(name) is None
    campaign_arn, triggers = deploy(first_version)
    assert set(triggers) <= {"PersonalizeCampaignTrigger"}
    assert hook.get_serving_solution_version(name) == first_version
    assert hook.get_serving_solution_version(campaign_arn) == first_version

    trainer = PersonalizeCreateSolutionVersionOperator(
        task_id="challenger", solution_arn=world["solution_arn"], aws_conn_id=world["conn_id"], **FAST
    )
    second_version = trainer.execute(make_context(trainer, run_id=unique_name("manual")))
    assert deploy(second_version, min_provisioned_tps=2)[0] == campaign_arn
    campaign = client.describe_campaign(campaignArn=campaign_arn)["campaign"]
    assert campaign["solutionVersionArn"] == second_version
    assert campaign["minProvisionedTPS"] == 2
    assert campaign["latestCampaignUpdate"]["status"] == "ACTIVE"
    assert hook.get_serving_solution_version(name) == second_version

    # A rerun finds the campaign already serving the version and asks Personalize for nothing.
    update_time = campaign["latestCampaignUpdate"]["creationDateTime"]
    rerun = PersonalizeDeployCampaignOperator(
        task_id="deploy",
        campaign_name=name,
        solution_version_arn=second_version,
        min_provisioned_tps=2,
        aws_conn_id=world["conn_id"],
        deferrable=deferrable,
    )
    assert rerun.execute(make_context(rerun)) == campaign_arn
    again = client.describe_campaign(campaignArn=campaign_arn)["campaign"]
    assert again["latestCampaignUpdate"]["creationDateTime"] == update_time
    campaigns = [c for page in client.get_paginator("list_campaigns").paginate() for c in page["campaigns"]]
    assert [c["campaignArn"] for c in campaigns if c["name"] == name] == [campaign_arn]
