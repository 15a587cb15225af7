"""Operator extra links to the Amazon Personalize console.

The console addresses a resource by its ARN with ``/`` written as ``$``, under the page of the
dataset group that owns it.
"""

from __future__ import annotations

from airflow.providers.amazon.aws.links.base_aws import BASE_AWS_CONSOLE_LINK, BaseAwsLink

_CONSOLE = BASE_AWS_CONSOLE_LINK + "/personalize/home?region={region_name}#"


def console_arn(arn: str) -> str:
    return arn.replace("/", "$")


class PersonalizeDatasetGroupLink(BaseAwsLink):
    """Console page of a dataset group."""

    name = "Personalize Dataset Group"
    key = "personalize_dataset_group"
    format_str = _CONSOLE + "{dataset_group}/dashboard"


class PersonalizeSolutionVersionLink(BaseAwsLink):
    """Console page of a solution version."""

    name = "Personalize Solution Version"
    key = "personalize_solution_version"
    format_str = _CONSOLE + "{dataset_group}/solutionVersionDetails/{solution_version}"


class PersonalizeCampaignLink(BaseAwsLink):
    """Console page of a campaign."""

    name = "Personalize Campaign"
    key = "personalize_campaign"
    format_str = _CONSOLE + "{dataset_group}/campaignDetails/{campaign}"


ALL_LINKS = (PersonalizeDatasetGroupLink, PersonalizeSolutionVersionLink, PersonalizeCampaignLink)
