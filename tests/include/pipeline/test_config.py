"""The pipeline config: the shipped file is valid, and every kind of mistake names file and key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from include.pipeline.config import CONFIG_DIR, ConfigError, load_config, load_configs
from tests.demo_config import one_solution

DEMO = CONFIG_DIR / "demo_retail.yaml"


def write(tmp_path: Path, data: dict, name: str = "pipeline.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def demo_dict() -> dict:
    """The demo config's first solution in the one-solution shorthand (tests/demo_config.py)."""
    return one_solution(yaml.safe_load(DEMO.read_text(encoding="utf-8")))


def test_shipped_configs_are_valid_and_yield_the_demo_pipeline():
    configs = load_configs(CONFIG_DIR)
    demo = next(c for c in configs if c.name == "demo_retail")
    assert demo.dag_ids["ingest"] == "demo_retail_ingest"
    assert [s.recipe for s in demo.solutions] == [
        "aws-user-personalization", "aws-similar-items", "aws-personalized-ranking",
    ]  # fmt: skip
    assert demo.solutions[2].campaign is None and demo.baseline_solution == "demo-retail-baseline-popularity"
    assert all(s.perform_auto_training is False for s in demo.solutions)
    assert demo.solutions[0].campaign.campaign_config == {"syncWithLatestSolutionVersion": False}
    assert set(demo.personalize_datasets()) == {"INTERACTIONS", "ITEMS", "USERS"}
    schema = json.loads(demo.personalize_datasets()["INTERACTIONS"]["schema"])
    assert [f["name"] for f in schema["fields"]][:3] == ["USER_ID", "ITEM_ID", "TIMESTAMP"]
    assert (
        demo.personalize_solutions()[0]["recipe_arn"]
        == "arn:aws:personalize:::recipe/aws-user-personalization"
    )


def test_auto_training_and_campaign_sync_are_off_unless_the_config_says(tmp_path):
    data = demo_dict()
    del data["solution"]["perform_auto_training"]
    del data["campaign"]["sync_with_latest_solution_version"]
    config = load_config(write(tmp_path, data))
    assert config.personalize_solutions()[0]["perform_auto_training"] is False
    assert config.campaign.campaign_config["syncWithLatestSolutionVersion"] is False


@pytest.mark.parametrize(
    ("change", "key", "words"),
    [
        (lambda d: d.update(shedule={}), "shedule", "unknown key"),
        (lambda d: d["gate"].update(tolerence=0.1), "gate.tolerence", "unknown key"),
        (lambda d: d["gate"].update(metric="accuracy"), "gate.metric", "precision_at_25"),
        (lambda d: d["gate"].update(tolerance=-0.1), "gate.tolerance", "greater than or equal"),
        (lambda d: d["gate"]["thresholds"].update(recall=0.1), "gate.thresholds.recall", ""),
        (lambda d: d.pop("app_db_conn_id"), "app_db_conn_id", "required key is missing"),
        (lambda d: d["schedule"].update(ingest="@daily"), "schedule.ingest", "zero-width"),
        (lambda d: d["schedule"].update(ingest="every day"), "schedule.ingest", "cron"),
        (lambda d: d["schedule"].update(ingest="0 6 * * *"), "schedule.ingest", "midnight UTC"),
        (lambda d: d["campaign"].update(min_provisioned_tps=0), "campaign.min_provisioned_tps", ""),
        (lambda d: d.update(dataset_group="has space"), "dataset_group", "pattern"),
        (lambda d: d["s3"].update(bucket="Bad_Bucket"), "s3.bucket", "pattern"),
        (lambda d: d.update(role_arn="not-an-arn"), "role_arn", "pattern"),
        (
            lambda d: d["datasets"]["interactions"]["columns"].update(USER_ID="user_id; drop table x"),
            "datasets.interactions",
            "plain SQL identifier",
        ),
        (
            lambda d: d["datasets"]["interactions"]["columns"].pop("TIMESTAMP"),
            "datasets.interactions",
            "time_column",
        ),
        (
            lambda d: d["solution"]["solution_config"].update(eventValueTreshold="1"),
            "solution.solution_config",
            "eventValueTreshold",
        ),
        (
            lambda d: d["solution"]["solution_config"].update(eventValueThreshold=1),
            "solution.solution_config",
            "eventValueThreshold",
        ),
        (
            lambda d: d["solution"].update(recipe="aws-popularity-count", training_mode="UPDATE"),
            "solution",
            "FULL",
        ),
        (lambda d: d["batch_inference"].update(filter="nope"), "(top level)", "not one of filters"),
        (
            lambda d: d["filters"].append(
                {"name": "by-cat", "expression": "INCLUDE ItemID WHERE Items.CATEGORY IN ($C)"}
            ),
            "filters.1",
            "$C",
        ),
        # Known only at runtime before: CreateSolution / CreateFilter would refuse them, or the
        # pipeline would write into another team's folder.
        (lambda d: d["solution"].update(recipe="aws-does-not-exist"), "solution.recipe", "unknown recipe"),
        (
            lambda d: d["solution"].update(recipe="arn:aws:personalize:::recipe/aws-user-personalisation"),
            "solution.recipe",
            "unknown recipe",
        ),
        (
            lambda d: d["filters"][0].update(
                expression='EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("a"'
            ),
            "filters.0.expression",
            "expected ',' or ')'",
        ),
        (
            lambda d: d["filters"][0].update(expression="INCLUDE ItemID WHERE Users.AGE > 3"),
            "filters.0.expression",
            "filter expression",
        ),
        (lambda d: d["filters"][0].update(expression="bogus"), "filters.0.expression", "INCLUDE or EXCLUDE"),
        (
            lambda d: d["datasets"]["interactions"].update(time_units={"EVENT_TYPE": "seconds"}),
            "datasets.interactions",
            "not a mapped time field",
        ),
        (
            lambda d: d["datasets"]["interactions"].update(time_units={"TIMESTAMP": "minutes"}),
            "datasets.interactions.time_units.TIMESTAMP",
            "'datetime', 'seconds' or 'milliseconds'",
        ),
        (lambda d: d["s3"].update(prefix="../other-team"), "s3.prefix", "'..'"),
        (lambda d: d["s3"].update(prefix="team/../other-team"), "s3.prefix", "'..'"),
        (lambda d: d["s3"].update(prefix="/absolute"), "s3.prefix", "starts with '/'"),
        (lambda d: d["s3"].update(prefix="team//x"), "s3.prefix", "'//'"),
    ],
)
def test_bad_key_or_value_names_the_file_and_the_key(tmp_path, change, key, words):
    data = demo_dict()
    change(data)
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: {key}"), message
    assert words in message


def test_every_recipe_the_local_service_trains_is_a_known_recipe():
    from personalize_contract.recipes import KNOWN_RECIPES

    from include.local_personalize.engine.registry import RECIPES

    assert set(RECIPES) <= KNOWN_RECIPES


def test_a_prefix_may_end_with_a_slash(tmp_path):
    data = demo_dict()
    data["s3"]["prefix"] = "team/pipeline/"
    assert load_config(write(tmp_path, data)).s3.key("x") == "team/pipeline/x"


def test_yaml_that_is_not_a_mapping_is_refused(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(path)


def test_two_files_may_not_share_a_pipeline_name(tmp_path):
    write(tmp_path, demo_dict(), "a.yaml")
    second = demo_dict()
    second["dataset_group"] = "other-group"
    write(tmp_path, second, "b.yaml")
    with pytest.raises(ConfigError, match=r"b\.yaml: name: 'demo_retail' is already used by .*a\.yaml"):
        load_configs(tmp_path)


def test_a_second_file_is_a_second_pipeline(tmp_path):
    write(tmp_path, demo_dict(), "a.yaml")
    second = demo_dict()
    second.update(name="books", dataset_group="books")
    write(tmp_path, second, "b.yaml")
    assert [c.name for c in load_configs(tmp_path)] == ["demo_retail", "books"]
