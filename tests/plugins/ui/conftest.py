"""Fixtures of the Personalize view's tests: a pipeline config on a fresh bucket and a serving campaign."""

from __future__ import annotations

import pytest
from personalize.kinds import CAMPAIGN

from tests.plugins.ui.world import write_config


@pytest.fixture(scope="session")
def serving_campaign(trained):
    """An ACTIVE campaign serving the trained version on the local Personalize service."""
    hook = trained["hook"]
    name = f"{trained['prefix']}-home"
    arn = hook.conn.create_campaign(
        name=name, solutionVersionArn=trained["version_arn"], minProvisionedTPS=1
    )["campaignArn"]
    hook.wait_until_active(CAMPAIGN, arn, waiter_delay=1)
    return {"name": name, "arn": arn, "version_arn": trained["version_arn"]}


@pytest.fixture
def pipeline(tmp_path, monkeypatch, s3_bucket, s3_client, trained, serving_campaign, aws_default_connection):
    """The demo pipeline's config pointed at a fresh bucket and the serving campaign."""
    monkeypatch.setenv("PERSONALIZE_PIPELINE_CONFIG_DIR", str(tmp_path))
    config = write_config(
        tmp_path,
        **{
            "s3.bucket": s3_bucket,
            "campaign.name": serving_campaign["name"],
            "solution.name": f"{trained['prefix']}-up",
            "campaign.max_serving_age_days": 14,
        },
    )
    return config
