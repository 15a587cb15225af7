"""Domain configs: which keys go together, and errors that name the key."""

from __future__ import annotations

import pytest

from include.pipeline.config import ConfigError, load_config
from include.pipeline.domain_config import domain_create_kwargs
from tests.include.pipeline.test_config import demo_dict, write

RECOMMENDERS = [
    {"name": "shop-for-you", "use_case": "aws-ecomm-recommended-for-you"},
    {
        "name": "shop-also-viewed",
        "use_case": "arn:aws:personalize:::recipe/aws-ecomm-customers-who-viewed-x-also-viewed",
    },
]


def domain_dict(**changes) -> dict:
    data = demo_dict()
    del data["solution"], data["campaign"]
    data.update({"domain": "ECOMMERCE", "recommenders": RECOMMENDERS, **changes})
    return data


def load(tmp_path, data):
    return load_config(write(tmp_path, data))


def test_a_domain_config_has_recommenders_and_no_solution(tmp_path):
    config = load(tmp_path, domain_dict(recommender_schedule={"stop": "0 22 * * *", "start": "0 6 * * *"}))
    assert config.solution is None and config.campaign is None
    assert [r.use_case for r in config.recommenders] == [
        "aws-ecomm-recommended-for-you",
        "aws-ecomm-customers-who-viewed-x-also-viewed",
    ]
    assert config.recommenders[1].recipe_arn.endswith("recipe/aws-ecomm-customers-who-viewed-x-also-viewed")
    assert config.personalize_solutions() == []
    assert domain_create_kwargs(config) == {
        "dataset_group": {"domain": "ECOMMERCE"},
        "schema": {"domain": "ECOMMERCE"},
    }
    assert domain_create_kwargs(load(tmp_path, demo_dict())) == {}


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (lambda: {**domain_dict(), "solution": demo_dict()["solution"]}, "solution: a domain config"),
        (lambda: {**domain_dict(), "campaign": demo_dict()["campaign"]}, "campaign: a domain config"),
        (
            lambda: domain_dict(recommenders=[]),
            "recommenders: a domain config (domain: ECOMMERCE) needs at least one",
        ),
        (lambda: domain_dict(recommenders=RECOMMENDERS[:1] * 2), "recommenders: names repeated"),
        (
            lambda: domain_dict(recommenders=[{"name": "vod", "use_case": "aws-vod-top-picks"}]),
            "recommenders.0.use_case: aws-vod-top-picks is a VIDEO_ON_DEMAND use case, not ECOMMERCE",
        ),
        (lambda: {**demo_dict(), "recommenders": RECOMMENDERS}, "recommenders: needs `domain: ECOMMERCE`"),
        (
            lambda: {k: v for k, v in demo_dict().items() if k != "solution"},
            "solution: required key is missing",
        ),
    ],
)
def test_keys_that_do_not_go_together_are_named(tmp_path, data, words):
    with pytest.raises(ConfigError) as error:
        load(tmp_path, data())
    assert words in str(error.value), str(error.value)


@pytest.mark.parametrize(
    ("change", "key", "words"),
    [
        ({"domain": "RETAIL"}, "domain:", "'ECOMMERCE' or 'VIDEO_ON_DEMAND'"),
        (
            {"recommenders": [{"name": "x", "use_case": "aws-user-personalization"}]},
            "recommenders.0.use_case:",
            "not a domain use case",
        ),
        (
            {"recommenders": [{"name": "bad name", "use_case": "aws-ecomm-recommended-for-you"}]},
            "recommenders.0.name:",
            "pattern",
        ),
        (
            {
                "recommenders": [
                    {
                        "name": "x",
                        "use_case": "aws-ecomm-recommended-for-you",
                        "recommender_config": {"minRPS": 1},
                    }
                ]
            },
            "recommenders.0.recommender_config:",
            "minRPS",
        ),
        (
            {"recommender_schedule": {"stop": "0 22 * * *"}},
            "recommender_schedule.start:",
            "required key is missing",
        ),
    ],
)
def test_bad_domain_values_name_the_key(tmp_path, change, key, words):
    with pytest.raises(ConfigError) as error:
        load(tmp_path, domain_dict(**change))
    message = str(error.value)
    assert f": {key}" in message and words in message, message
