"""Amazon Personalize's quotas per dataset group are checked when a config is validated.

Expected numbers are literal, from the developer guide's "Each dataset group has the following
quotas" table (docs/PERSONALIZE_FACTS.md, "Quotas per dataset group"), not read from the contract.
"""

from __future__ import annotations

import pytest

from include.pipeline.config import ConfigError, load_config, load_configs_isolated
from tests.include.pipeline.test_config import demo_dict, write
from tests.include.pipeline.test_domain_config import domain_dict

SOURCE = "https://docs.aws.amazon.com/personalize/latest/dg/limits.html"
FILTER = 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase")'


def with_solutions(count: int, *, campaigns: int = 0, baseline: bool = False, **changes) -> dict:
    """The demo config with `count` solutions, the first `campaigns` of them served by a campaign."""
    data = demo_dict()
    del data["solution"], data["campaign"], data["batch_inference"]
    data["solutions"] = [
        {"name": f"shop-{index}", "recipe": "aws-similar-items", "batch": {"num_results": 10}}
        | ({"campaign": {"name": f"shop-{index}"}} if index < campaigns else {})
        for index in range(count)
    ]
    if baseline:
        data["gate"] = {**data["gate"], "baseline": "popularity-count"}
    data.update(changes)
    return data


def error_of(tmp_path, data) -> str:
    with pytest.raises(ConfigError) as raised:
        load_config(write(tmp_path, data))
    return str(raised.value)


def test_ten_solutions_and_five_campaigns_fit_one_dataset_group(tmp_path):
    config = load_config(write(tmp_path, with_solutions(10, campaigns=5)))
    assert len(config.solutions) == 10 and sum(1 for e in config.solutions if e.campaign) == 5


def test_an_eleventh_solution_fails_naming_the_key_the_quota_and_its_source(tmp_path):
    message = error_of(tmp_path, with_solutions(11))
    assert message.startswith(
        f"{tmp_path / 'pipeline.yaml'}: solutions: 11 active solutions in dataset group"
    )
    assert f"at most 10 active solutions per dataset group (adjustable quota; {SOURCE})" in message
    assert "service_quotas.solutions_per_dataset_group" in message


def test_the_baseline_solution_counts_against_the_solutions_quota(tmp_path):
    load_config(write(tmp_path, with_solutions(9, baseline=True)))
    message = error_of(tmp_path, with_solutions(10, baseline=True))
    assert "solutions: 11 active solutions (10 entries + the popularity baseline a gate asks for)" in message


def test_a_sixth_campaign_fails_naming_its_entry(tmp_path):
    message = error_of(tmp_path, with_solutions(7, campaigns=6))
    assert ": solutions.5.campaign: 6 active campaigns in dataset group" in message
    assert f"at most 5 active campaigns per dataset group (adjustable quota; {SOURCE})" in message


def test_a_thirty_first_filter_fails(tmp_path):
    filters = [{"name": f"filter-{index}", "expression": FILTER} for index in range(31)]
    data = demo_dict()
    data["batch_inference"].pop("filter", None)
    load_config(write(tmp_path, {**data, "filters": filters[:30]}))
    message = error_of(tmp_path, {**data, "filters": filters})
    assert ": filters: 31 filters in dataset group" in message
    assert f"at most 30 filters per dataset group (adjustable quota; {SOURCE})" in message


def test_a_sixth_recommender_fails_and_that_quota_cannot_be_raised(tmp_path):
    recommenders = [
        {"name": f"shop-{index}", "use_case": "aws-ecomm-recommended-for-you"} for index in range(6)
    ]
    load_config(write(tmp_path, domain_dict(recommenders=recommenders[:5])))
    message = error_of(tmp_path, domain_dict(recommenders=recommenders))
    assert ": recommenders: 6 recommenders in dataset group" in message
    assert f"at most 5 recommenders per dataset group (fixed quota; {SOURCE})" in message
    assert "second dataset group" in message
    unknown = error_of(tmp_path, domain_dict(service_quotas={"recommenders_per_dataset_group": 6}))
    assert "service_quotas.recommenders_per_dataset_group: unknown key" in unknown


def test_a_raised_quota_is_declared_and_then_holds(tmp_path):
    raised = {"solutions_per_dataset_group": 12, "campaigns_per_dataset_group": 6}
    config = load_config(write(tmp_path, with_solutions(12, campaigns=6, service_quotas=raised)))
    assert len(config.solutions) == 12
    message = error_of(tmp_path, with_solutions(13, service_quotas=raised))
    assert "at most 12 active solutions per dataset group" in message
    assert (
        "service_quotas.solutions_per_dataset_group: Input should be greater than or equal to 1"
        in error_of(tmp_path, with_solutions(1, service_quotas={"solutions_per_dataset_group": 0}))
    )


def test_an_over_quota_file_is_an_import_error_of_its_own_and_the_others_still_load(tmp_path):
    """What dags/personalize_config_errors.py reports: the file and key; the valid file keeps its DAGs."""
    write(tmp_path, with_solutions(11), name="a_too_many.yaml")
    good = with_solutions(2)
    good.update(name="other_shop", dataset_group="other-shop")
    write(tmp_path, good, name="b_fine.yaml")
    loaded = load_configs_isolated(tmp_path)
    assert [c.name for c in loaded.configs.values()] == ["other_shop"]
    (error,) = loaded.errors.values()
    assert error.startswith(f"{tmp_path / 'a_too_many.yaml'}: solutions: 11 active solutions")
