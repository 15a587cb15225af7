"""The pipeline config: one YAML file per dataset group in include/config/, validated into a typed model.

Every key is checked when the DAG file is parsed. An unknown key, a missing key or a bad value is a
`ConfigError` naming the file and the dotted key (`include/config/x.yaml: gate.tolerance: ...`), so a
typo never silently falls back to a default. Each file yields its own DAGs: a second dataset group is
a second file, not new code.

Names of Personalize resources (schemas, datasets, import jobs) derive from `name` and
`dataset_group` so nothing has to be spelled twice. `solution_config` and `campaign` options are
checked against botocore's service model, so keys are Personalize's own (camelCase) and a typo is
caught here rather than by AWS after an hour of training.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from include.pipeline.mapping import DatasetMapping, MappingError, schema_for
from include.pipeline.metric_names import METRIC_NAMES

CONFIG_DIR = Path(__file__).resolve().parents[1] / "config"
# Lets tests and deployments point the DAG file at another folder of configs without code changes.
CONFIG_DIR_ENV = "PERSONALIZE_PIPELINE_CONFIG_DIR"
# The pool that caps concurrent dataset import jobs across all pipelines: AWS allows at most 5
# pending or in-progress import jobs per region (a hard limit). Created by `ensure_import_pool()`.
DEFAULT_IMPORT_POOL = "personalize_import_jobs"
DEFAULT_IMPORT_POOL_SLOTS = 5

PersonalizeName = Annotated[
    str, StringConstraints(pattern=r"^[a-zA-Z0-9][a-zA-Z0-9\-_]*$", min_length=1, max_length=63)
]
PipelineName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$", min_length=1, max_length=40)]
MetricName = Literal[METRIC_NAMES]  # type: ignore[valid-type]
RECIPE_ARN_PREFIX = "arn:aws:personalize:::recipe/"
# Recipes whose solutions accept trainingMode UPDATE (Personalize: only these, after a FULL version).
UPDATE_RECIPES = frozenset({"aws-user-personalization", "aws-user-personalization-v2", "aws-hrnn-coldstart"})


class ConfigError(ValueError):
    """A config file Personalize or the pipeline would refuse; the message names file and key."""


def _check_cron(expression: str) -> str:
    from croniter import croniter

    if expression.strip().startswith("@"):
        # "@daily" and friends parse, but on Airflow 3 they make a zero-width data interval.
        raise ValueError(
            f"{expression!r}: write the cron fields out (e.g. '0 0 * * *'); presets give a zero-width "
            "data interval on Airflow 3"
        )
    if not croniter.is_valid(expression):
        raise ValueError(f"{expression!r} is not a valid cron expression (five fields, e.g. '0 2 * * *')")
    return expression


Cron = Annotated[str, AfterValidator(_check_cron)]


def _check_botocore_shape(value: dict[str, Any], shape_name: str) -> dict[str, Any]:
    """Validate a dict against a Personalize request shape (member names, types) from botocore."""
    import botocore.session
    from botocore.validate import ParamValidator

    shape = botocore.session.get_session().get_service_model("personalize").shape_for(shape_name)
    report = ParamValidator().validate(value, shape)
    if report.has_errors():
        raise ValueError(report.generate_report().replace("\n", "; "))
    return value


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class S3Config(StrictModel):
    bucket: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")]
    prefix: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9!_.*'()\-/]*$")] = ""

    @field_validator("prefix")
    @classmethod
    def _strip_slashes(cls, value: str) -> str:
        return value.strip("/")

    def key(self, *parts: str) -> str:
        return "/".join(p.strip("/") for p in (self.prefix, *parts) if p.strip("/"))

    def uri(self, *parts: str) -> str:
        return f"s3://{self.bucket}/{self.key(*parts)}"


class DatasetConfig(StrictModel):
    """One dataset: the app table it is read from and `{Personalize field: app column}`."""

    table: str
    columns: dict[str, str] = Field(min_length=1)
    types: dict[str, Literal["string", "int", "long", "float", "double", "boolean"]] = {}
    categorical: list[str] = []
    nullable: list[str] | None = None
    time_column: str | None = None


class DatasetsConfig(StrictModel):
    interactions: DatasetConfig
    items: DatasetConfig | None = None
    users: DatasetConfig | None = None
    # Share of rows the extractor may quarantine before the task fails.
    max_rejected_share: float = Field(0.01, ge=0, le=1)

    @field_validator("interactions", "items", "users")
    @classmethod
    def _mapping_is_valid(cls, dataset: DatasetConfig | None, info: ValidationInfo) -> DatasetConfig | None:
        if dataset is not None:
            try:
                _to_mapping(info.field_name.upper(), dataset)
            except MappingError as err:
                raise ValueError(str(err)) from err
        return dataset

    def mappings(self) -> dict[str, DatasetMapping]:
        """Personalize dataset type -> mapping, for the datasets this pipeline has."""
        return {
            key.upper(): _to_mapping(key.upper(), dataset)
            for key in ("interactions", "items", "users")
            if (dataset := getattr(self, key)) is not None
        }


def _to_mapping(dataset_type: str, dataset: DatasetConfig) -> DatasetMapping:
    return DatasetMapping.from_columns(
        dataset_type,
        dataset.table,
        dataset.columns,
        types=dataset.types,
        categorical=dataset.categorical,
        nullable=dataset.nullable,
        time_column=dataset.time_column,
    )


class SolutionConfig(StrictModel):
    name: PersonalizeName
    recipe: str = "aws-user-personalization"
    event_type: str | None = None
    perform_hpo: bool = False
    # AWS defaults this to true (a billed retrain every 7 days, around the gate); ours is off.
    perform_auto_training: bool = False
    # Passed to CreateSolution as is: Personalize's own keys, e.g. eventValueThreshold (a string).
    solution_config: dict[str, Any] = {}
    # Training mode of scheduled and asset-triggered runs; the manual form can choose either.
    training_mode: Literal["FULL", "UPDATE"] = "FULL"

    @field_validator("recipe")
    @classmethod
    def _recipe_name(cls, value: str) -> str:
        name = value.removeprefix(RECIPE_ARN_PREFIX)
        if not re.fullmatch(r"[a-z0-9][a-z0-9\-]*", name):
            raise ValueError(f"{value!r} is not a recipe name (e.g. aws-user-personalization) or recipe ARN")
        return name

    @field_validator("solution_config")
    @classmethod
    def _solution_config_shape(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _check_botocore_shape(value, "SolutionConfig")

    @model_validator(mode="after")
    def _update_needs_a_recipe_that_supports_it(self) -> SolutionConfig:
        if self.training_mode == "UPDATE" and self.recipe not in UPDATE_RECIPES:
            raise ValueError(f"training_mode UPDATE: recipe {self.recipe} supports FULL only")
        return self

    @property
    def recipe_arn(self) -> str:
        return RECIPE_ARN_PREFIX + self.recipe

    @property
    def supports_update(self) -> bool:
        return self.recipe in UPDATE_RECIPES


class CampaignConfig(StrictModel):
    name: PersonalizeName
    min_provisioned_tps: int = Field(1, ge=1)
    # AWS can redeploy every new version automatically, around the gate; ours is off.
    sync_with_latest_solution_version: bool = False
    # Warn when the serving solution version is older than this: broken retraining goes unnoticed otherwise.
    max_serving_age_days: int = Field(14, ge=1)

    @property
    def campaign_config(self) -> dict[str, Any]:
        return {"syncWithLatestSolutionVersion": self.sync_with_latest_solution_version}


class FilterConfig(StrictModel):
    name: PersonalizeName
    expression: str = Field(min_length=1, max_length=2500)
    # filterValues for the smoke test, for expressions with $parameters (values as Personalize wants them: '"a","b"').
    smoke_test_values: dict[str, str] = {}

    @model_validator(mode="after")
    def _parameters_have_values(self) -> FilterConfig:
        parameters = set(re.findall(r"\$([A-Za-z0-9_]+)", self.expression))
        missing = sorted(parameters - set(self.smoke_test_values))
        if missing:
            raise ValueError(
                f"filter {self.name}: smoke_test_values lacks a value for ${', $'.join(missing)}"
            )
        return self


class GateConfig(StrictModel):
    metric: MetricName = "precision_at_25"
    # Minimum value per metric the challenger must reach.
    thresholds: dict[MetricName, Annotated[float, Field(ge=0, le=1)]] = {}
    # How far (absolute) the challenger may trail the champion on `metric`.
    tolerance: float = Field(0.0, ge=0, le=1)
    # A rejected challenger leaves the campaign untouched; True also fails the run.
    fail_on_reject: bool = False


class SmokeTestConfig(StrictModel):
    users: int = Field(3, ge=1, le=50)
    num_results: int = Field(10, ge=1, le=500)


def _whole_days(expression: str) -> str:
    minute, hour = expression.split()[:2]
    if minute != "0" or hour != "0":
        raise ValueError(
            f"{expression!r}: ingest runs must start at midnight UTC (minute and hour 0, e.g. '0 0 * * *' "
            "or weekly '0 0 * * 1'): interactions are extracted in whole days, one dt= partition per day"
        )
    return expression


class ScheduleConfig(StrictModel):
    start_date: datetime
    ingest: Annotated[Cron, AfterValidator(_whole_days)] = "0 0 * * *"
    train_deploy: Cron = "0 3 * * 0"
    batch_inference: Cron | None = "0 6 * * 1"
    # Unpausing ingest with catch-up runs every interval since start_date, one by one: off, so a
    # first unpause makes one run; history is loaded by one manual run (form start/end) or a backfill.
    catchup: bool = False

    @field_validator("start_date")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class BatchInferenceConfig(StrictModel):
    num_results: int = Field(25, ge=1, le=500)
    # A configured filter's name, applied to every user's recommendations.
    filter: str | None = None


class TasksConfig(StrictModel):
    """Airflow task hygiene every task gets."""

    retries: int = Field(2, ge=1)
    retry_delay_seconds: float = Field(60, gt=0)
    max_retry_delay_seconds: float = Field(900, gt=0)
    # Upper bound on each wait (import job, training, campaign, batch job).
    wait_timeout_minutes: int = Field(360, ge=1)
    # Seconds between status polls while waiting.
    poll_seconds: float = Field(30, gt=0)
    import_pool: str = DEFAULT_IMPORT_POOL
    # Wait in the triggerer (no worker slot held); false waits in the worker.
    deferrable: bool = True
    # Deferrable waits first poll in the worker this long and defer only if still in progress:
    # short waits never defer (see "Deferral race" in docs/DESIGN.md).
    defer_after_seconds: float = Field(30, ge=0)


class PipelineConfig(StrictModel):
    name: PipelineName
    description: str = ""
    owner: str = Field(min_length=1)
    tags: list[str] = []
    aws_conn_id: str = "aws_default"
    region_name: str | None = None
    app_db_conn_id: str
    s3: S3Config
    role_arn: Annotated[str, StringConstraints(pattern=r"^arn:aws[a-z\-]*:iam::\d{12}:role/.+$")] | None = (
        None
    )
    kms_key_arn: Annotated[str, StringConstraints(pattern=r"^arn:aws[a-z\-]*:kms:.+$")] | None = None
    dataset_group: PersonalizeName
    datasets: DatasetsConfig
    solution: SolutionConfig
    campaign: CampaignConfig
    filters: list[FilterConfig] = []
    event_tracker: PersonalizeName | None = None
    gate: GateConfig = GateConfig()
    smoke_test: SmokeTestConfig = SmokeTestConfig()
    schedule: ScheduleConfig
    batch_inference: BatchInferenceConfig = BatchInferenceConfig()
    tasks: TasksConfig = TasksConfig()

    @model_validator(mode="after")
    def _cross_references(self) -> PipelineConfig:
        names = [f.name for f in self.filters]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"filters: names repeated: {repeated}")
        if self.batch_inference.filter is not None and self.batch_inference.filter not in names:
            raise ValueError(
                f"batch_inference.filter {self.batch_inference.filter!r} is not one of filters {names}"
            )
        return self

    # Derived names, so each is spelled in one place.
    @property
    def dag_ids(self) -> dict[str, str]:
        return {kind: f"{self.name}_{kind}" for kind in ("ingest", "train_deploy", "batch_inference")}

    def schema_name(self, dataset_type: str) -> str:
        return f"{self.dataset_group}-{dataset_type.lower()}"[:63]

    def dataset_name(self, dataset_type: str) -> str:
        return f"{self.dataset_group}-{dataset_type.lower()}"[:63]

    @cached_property
    def mappings(self) -> dict[str, DatasetMapping]:
        return self.datasets.mappings()

    def personalize_datasets(self) -> dict[str, dict[str, str]]:
        """The `datasets` argument of PersonalizeEnsureResourcesOperator."""
        return {
            dataset_type: {
                "dataset_name": self.dataset_name(dataset_type),
                "schema_name": self.schema_name(dataset_type),
                "schema": schema_for(mapping).to_avro(),
            }
            for dataset_type, mapping in self.mappings.items()
        }

    def personalize_solutions(self) -> list[dict[str, Any]]:
        solution: dict[str, Any] = {
            "name": self.solution.name,
            "recipe_arn": self.solution.recipe_arn,
            "perform_hpo": self.solution.perform_hpo,
            "perform_auto_training": self.solution.perform_auto_training,
        }
        if self.solution.event_type:
            solution["event_type"] = self.solution.event_type
        if self.solution.solution_config:
            solution["solution_config"] = self.solution.solution_config
        return [solution]

    def personalize_filters(self) -> list[dict[str, str]]:
        return [{"name": f.name, "filter_expression": f.expression} for f in self.filters]


def load_config(path: str | Path) -> PipelineConfig:
    """Read and validate one config file; every error names the file and the key."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"{path}: cannot read: {err}") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, got {type(raw).__name__}")
    try:
        return PipelineConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_describe(path, err)) from None


def config_dir() -> Path:
    return Path(os.environ.get(CONFIG_DIR_ENV) or CONFIG_DIR)


def load_configs(directory: str | Path | None = None) -> list[PipelineConfig]:
    """Every *.yaml / *.yml in the folder, sorted by file name; two files may not share a name."""
    directory = Path(directory) if directory is not None else config_dir()
    paths = sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml"))
    configs, seen = [], {}
    for path in paths:
        config = load_config(path)
        for key, value in (("name", config.name), ("dataset_group", config.dataset_group)):
            other = seen.get((key, value))
            if other is not None:
                raise ConfigError(f"{path}: {key}: {value!r} is already used by {other}")
            seen[(key, value)] = path
        configs.append(config)
    return configs


def _describe(path: Path, err: ValidationError) -> str:
    lines = []
    for error in err.errors():
        key = ".".join(str(part) for part in error["loc"]) or "(top level)"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key (check the spelling; see the configuration reference in the README)"
        elif error["type"] == "missing":
            message = "required key is missing"
        lines.append(f"{path}: {key}: {message}")
    return "\n".join(lines)
