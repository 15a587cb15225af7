"""The README's reference sections stay true to the code they describe."""

from __future__ import annotations

import re
import typing

from pydantic import BaseModel

from tests.conftest import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")


def section(title: str) -> str:
    start = README.index(f"## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


def config_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Dotted paths of every leaf key (nested models expanded; list items as `name[].key`)."""
    keys = []
    for name, field in model.model_fields.items():
        path = prefix + name
        nested = None
        for candidate in (field.annotation, *typing.get_args(field.annotation)):
            for inner in (candidate, *typing.get_args(candidate)):
                if nested is None and isinstance(inner, type) and issubclass(inner, BaseModel):
                    nested = (inner, typing.get_origin(candidate) is list)
        if nested is None:
            keys.append(path)
        else:
            model_type, is_list = nested
            keys.extend(config_keys(model_type, path + ("[]." if is_list else ".")))
    return keys


def shorthand_key(key: str) -> str:
    """A `solutions[]` entry's key as the README documents it: by its one-solution shorthand key
    (`solutions[].recipe` is `solution.recipe`, `solutions[].gate.metric` is `gate.metric`)."""
    for entry_key, short in (("campaign.", "campaign."), ("batch.", "batch_inference."), ("gate.", "gate.")):
        if key.startswith(f"solutions[].{entry_key}"):
            return short + key.removeprefix(f"solutions[].{entry_key}")
    if key.startswith("solutions[].") and key.count(".") == 1:
        return "solution." + key.removeprefix("solutions[].")
    return key


def test_configuration_reference_documents_every_config_key():
    from include.pipeline.config import PipelineConfig

    documented = set(re.findall(r"`([A-Za-z0-9_.\[\]<>]+)`", section("Configuration reference")))
    missing = []
    for key in config_keys(PipelineConfig):
        generic = shorthand_key(re.sub(r"^datasets\.(interactions|items|users)\.", "datasets.<type>.", key))
        if key not in documented and generic not in documented:
            missing.append(key)
    assert not missing, f"README configuration reference lacks {missing}"


def test_configuration_reference_names_no_key_the_config_lacks():
    from include.pipeline.config import PipelineConfig

    keys = set(config_keys(PipelineConfig))
    generic = {re.sub(r"^datasets\.(interactions|items|users)\.", "datasets.<type>.", k) for k in keys}
    # Whole sections (datasets.items) are documented as a row too.
    keys |= {".".join(k.split(".")[:depth]) for k in keys for depth in range(1, k.count(".") + 1)}
    rows = re.findall(r"^\| (`[^|]+`(?:, `[^|]+`)*) \|", section("Configuration reference"), re.M)
    for cell in rows:
        for key in re.findall(r"`([^`]+)`", cell):
            assert key in keys | generic, f"README documents {key!r}, which the config does not have"


def test_dag_ids_and_commands_in_the_readme_exist():
    from airflow.cli import cli_config

    from include.pipeline.config import load_configs

    dag_ids = {dag_id for config in load_configs() for dag_id in config.dag_ids.values()}
    for dag_id in set(re.findall(r"\b[a-z_]+_(?:ingest|train_deploy|batch_inference)\b", README)):
        if not dag_id.startswith("<"):
            assert dag_id in dag_ids, f"README names DAG {dag_id}, which no config yields"
    commands = {c.name for c in cli_config.core_commands}
    for command in re.findall(r'^(?:airflow |make airflow ARGS=")([a-z-]+)', README, re.M):
        assert command in commands, f"README runs `airflow {command}`, not an Airflow 3 command"
    backfill = re.findall(r'^(?:airflow |make airflow ARGS=")backfill create (.+)$', README, re.M)
    assert backfill
    for line in backfill:
        for flag in re.findall(r"--[a-z-]+", line):
            assert flag in {"--dag-id", "--from-date", "--to-date", "--max-active-runs", "--dry-run"}, flag


def test_troubleshooting_messages_are_ones_the_code_raises():
    """Each quoted message fragment of the troubleshooting table appears in the source."""
    sources = "\n".join(
        path.read_text(encoding="utf-8")
        for folder in ("include", "plugins")
        for path in (REPO_ROOT / folder).rglob("*.py")
    )
    # Join implicitly concatenated string literals split over lines ("abc "\n    f"def").
    sources = re.sub(r"(?<=[^\\])\"\s*\n\s*f?\"", "", sources)
    rows = re.findall(r"^\| `([^`]+)`", section("Troubleshooting"), re.M)
    assert len(rows) > 15
    # Airflow's, Python's and Personalize's own text, or the hook's "Personalize <kind> <arn> is <status>".
    external = (
        "Executor ",
        "httpx.ConnectError",
        "FileNotFoundError",
        "Database migration required",
        "Personalize solution version ",
        "Personalize dataset import job ",
    )
    for message in rows:
        if message.startswith(external):
            continue
        fragments = [f for f in message.split("...") if len(f.strip()) > 6]
        assert fragments, message
        for fragment in fragments:
            assert fragment.strip() in sources, (
                f"troubleshooting quotes {fragment.strip()!r}, not found in the code"
            )


def test_make_targets_in_the_readme_exist():
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, re.M))
    used = set(re.findall(r"`make ([a-z][a-z-]*)", README)) | set(
        re.findall(r"^make ([a-z][a-z-]*)", README, re.M)
    )
    assert {"ui", "ui-stop", "airflow", "test-stack"} <= used
    assert used <= targets, f"README runs make targets the Makefile lacks: {used - targets}"


def test_backfill_dates_come_from_the_demo_data(tmp_path):
    """The README derives the backfill bounds with `include.stack data-days`, not hard-coded dates."""
    from datetime import UTC, datetime

    from include.demo_data import generate
    from include.stack import Stack

    ui = section("Running it in the Airflow UI")
    assert "include.stack data-days" in ui
    assert not re.search(r"--from-date 20\d\d-", ui), "hard-coded backfill dates drift from the demo data"
    stack = Stack(tmp_path)
    summary = generate(stack.app_db, users=40, items=20, days=5, end=datetime(2026, 3, 10, tzinfo=UTC))
    assert stack.data_days() == (summary["start"][:10], "2026-03-09")
