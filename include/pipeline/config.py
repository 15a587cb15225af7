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
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from personalize_contract.filter_grammar import parse_filter
from personalize_contract.metrics import METRIC_NAMES
from personalize_contract.names import NAME_MAX_LENGTH
from pydantic import (
    AfterValidator,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from include.pipeline import days, domain_config
from include.pipeline.config_types import Cron, PersonalizeName, StrictModel
from include.pipeline.lifecycle_config import ErasureConfig, ExportConfig
from include.pipeline.mapping import DatasetMapping, MappingError, schema_for
from include.pipeline.online_metrics import MetricAttributionConfig, check_metric_attribution
from include.pipeline.quota_config import ServiceQuotasConfig, check_group_quotas
from include.pipeline.run_config import NotificationsConfig, TasksConfig
from include.pipeline.solution_config import (
    BASELINE_RECIPES,
    BatchInferenceConfig,
    CampaignConfig,
    ServedSolution,
    SolutionConfig,
    baseline_solution_name,
    check_shorthand,
    check_solutions,
    shorthand_entry,
)

__all__ = ["BatchInferenceConfig", "CampaignConfig", "SolutionConfig"]  # their home is solution_config

CONFIG_DIR = Path(__file__).resolve().parents[1] / "config"
# Lets tests and deployments point the DAG file at another folder of configs without code changes.
CONFIG_DIR_ENV = "PERSONALIZE_PIPELINE_CONFIG_DIR"
# libyaml's loader when PyYAML was built with it (the wheels are): same safe subset, ~10x faster.
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
PipelineName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$", min_length=1, max_length=40)]
# Personalize's tag key and value characters (Tag shape), ASCII; 50 tags per resource, one is ours.
TAG_PATTERN = r"^[A-Za-z0-9 _.:/=+@-]*$"
MetricName = Literal[METRIC_NAMES]  # type: ignore[valid-type]


class ConfigError(ValueError):
    """A config file Personalize or the pipeline would refuse; the message names file and key."""


class S3Config(StrictModel):
    bucket: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")]
    prefix: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9!_.*'()\-/]*$")] = ""
    # Server-side encryption of every object the pipeline writes (None: the bucket's default).
    sse: Literal["AES256", "aws:kms"] | None = None
    # KMS key (id, ARN or alias) for sse aws:kms; without it S3 uses the account's aws/s3 key.
    kms_key_id: Annotated[str, StringConstraints(min_length=1, max_length=2048)] | None = None

    @model_validator(mode="after")
    def _kms_key_needs_kms(self) -> S3Config:
        if self.kms_key_id is not None and self.sse != "aws:kms":
            raise ValueError(f"kms_key_id is set but sse is {self.sse!r}: set sse: aws:kms to use the key")
        return self

    @field_validator("prefix")
    @classmethod
    def _relative_prefix(cls, value: str) -> str:
        # A prefix is this pipeline's own folder in a shared bucket: "../other-team" or "/x" would
        # reach (or, with the cleanup of stale parts, delete) another pipeline's objects.
        if value.startswith("/"):
            raise ValueError(
                f"{value!r} starts with '/': write the prefix relative to the bucket (e.g. 'team/pipeline')"
            )
        segments = value.rstrip("/").split("/")
        if value and any(segment in ("", ".", "..") for segment in segments):
            raise ValueError(
                f"{value!r}: every '/'-separated part must be a folder name (no '..', '.' or '//')"
            )
        return value.rstrip("/")

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
    # Time fields (TIMESTAMP, CREATION_TIMESTAMP) held as integer epochs: their unit. Unlisted ones
    # must be date/time columns.
    time_units: dict[str, Literal["datetime", "seconds", "milliseconds"]] = {}


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
        time_units=dataset.time_units,
    )


class FilterConfig(StrictModel):
    name: PersonalizeName
    expression: str = Field(min_length=1, max_length=2500)
    # filterValues for the smoke test, for expressions with $parameters (values as Personalize wants them: '"a","b"').
    smoke_test_values: dict[str, str] = {}

    @field_validator("expression")
    @classmethod
    def _parses(cls, value: str) -> str:
        # One grammar, the neutral contract's, for this check and for the local service's CreateFilter.
        parse_filter(value)  # ValueError names the position and the token
        return value

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
    # How far (absolute) the challenger may trail the champion on `metric`; "auto" (replay only):
    # reject only when the challenger is worse beyond the bootstrap interval of the difference.
    tolerance: Annotated[float, Field(ge=0, le=1)] | Literal["auto"] = 0.0
    # A rejected challenger leaves the campaign untouched; True also fails the run.
    fail_on_reject: bool = False
    # Refuse to train when the interactions dataset holds this share fewer records than the
    # champion was trained on (a lost or wiped import), failing with both counts.
    max_data_shrink: float = Field(0.05, ge=0, le=1)
    # offline: GetSolutionMetrics of each version (its own split, its own data). replay: the
    # challenger waits until holdout_days of newer data exist, then it and the champion are scored
    # by batch inference on the same users and window (docs/DESIGN.md, "Replay evaluation").
    evaluation: Literal["offline", "replay"] = "offline"
    holdout_days: int = Field(7, ge=1, le=90)
    # Held-out users scored (a deterministic sample of those active in the window).
    replay_users: int = Field(1000, ge=50, le=50_000)
    # Bootstrap resamples over the held-out users for the confidence intervals.
    replay_resamples: int = Field(1000, ge=100, le=20_000)
    # After the replay gate accepts: deploy the version as trained, or retrain it on all data first.
    replay_deploy: Literal["as_trained", "retrain"] = "as_trained"

    @model_validator(mode="after")
    def _auto_tolerance_needs_replay(self) -> GateConfig:
        if self.tolerance == "auto" and self.evaluation != "replay":
            raise ValueError(
                "tolerance 'auto' needs evaluation: replay (offline metrics carry no interval to be "
                "tolerant within); set a number, or evaluation: replay"
            )
        return self


def tolerance_text(tolerance: float | str) -> str:
    """gate.tolerance as people read it: a number, or "auto" (the replay interval decides)."""
    return tolerance if isinstance(tolerance, str) else f"{tolerance:g}"


class SolutionGateConfig(GateConfig):
    """A solution's gate: GateConfig plus the baseline rule (include/pipeline/baseline.py)."""

    # Train a popularity-count solution on the same data and require `min_lift` over it on `metric`.
    baseline: Literal[tuple(BASELINE_RECIPES)] | None = None  # type: ignore[valid-type]
    min_lift: float = Field(1.0, ge=1.0)

    @model_validator(mode="after")
    def _lift_needs_a_baseline(self) -> SolutionGateConfig:
        if self.min_lift != 1.0 and self.baseline is None:
            raise ValueError("min_lift is set but baseline is not: set baseline: popularity-count")
        return self


class SolutionEntry(ServedSolution):
    # Default: the top-level `gate:`.
    gate: SolutionGateConfig | None = None


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
        return days.to_utc(value, "schedule.start_date")


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
    # Every solution of the dataset group (solution_config.py); `solution:` + `campaign:` (+
    # `batch_inference:`) is the shorthand for one entry, and `gate:` every entry's default gate.
    # At least one unless `domain` is set (include/pipeline/domain_config.py: check_domain_keys).
    solutions: list[SolutionEntry] = []
    solution: SolutionConfig | None = None
    campaign: CampaignConfig | None = None
    batch_inference: BatchInferenceConfig = BatchInferenceConfig()
    # Tags on every resource the pipeline creates, with pipeline=<name> (`tags:` above are DAG tags).
    resource_tags: dict[
        Annotated[str, StringConstraints(pattern=TAG_PATTERN, min_length=1, max_length=128)],
        Annotated[str, StringConstraints(pattern=TAG_PATTERN, max_length=256)],
    ] = Field(default={}, max_length=49)
    filters: list[FilterConfig] = []
    event_tracker: PersonalizeName | None = None
    gate: SolutionGateConfig = SolutionGateConfig()
    smoke_test: SmokeTestConfig = SmokeTestConfig()
    schedule: ScheduleConfig
    tasks: TasksConfig = TasksConfig()
    notifications: NotificationsConfig = NotificationsConfig()
    # The lifecycle DAGs (include/pipeline/lifecycle_config.py): erase_users always, export when set.
    erasure: ErasureConfig = ErasureConfig()
    export: ExportConfig | None = None
    # Domain dataset groups served by recommenders instead of solution + campaign.
    domain: Literal[domain_config.DOMAINS] | None = None  # type: ignore[valid-type]
    recommenders: list[domain_config.RecommenderConfig] = []
    recommender_schedule: domain_config.RecommenderScheduleConfig | None = None
    # Online metrics from events with a recommendationId (include/pipeline/online_metrics.py).
    metric_attribution: MetricAttributionConfig | None = None
    # Adjustable per-dataset-group quotas raised for this account (include/pipeline/quota_config.py).
    service_quotas: ServiceQuotasConfig = ServiceQuotasConfig()

    _shorthand = model_validator(mode="before")(check_shorthand)

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
        if self.solution is not None and self.campaign is not None:
            entry = shorthand_entry(self.solution, self.campaign, self.batch_inference)
            object.__setattr__(self, "solutions", [SolutionEntry.model_validate(entry)])
        domain_config.check_domain_keys(self)
        check_metric_attribution(self)
        # Frozen models: each entry without its own gate gets the top-level one.
        gated = [e if e.gate else e.model_copy(update={"gate": self.gate}) for e in self.solutions]
        object.__setattr__(self, "solutions", gated)
        check_solutions(self.solutions, names, self.baseline_solution)
        check_group_quotas(self)
        return self

    @property
    def baseline_solution(self) -> str | None:
        """The popularity-count solution baseline gates compare with (None: no gate asks for one)."""
        if any(e.gate and e.gate.baseline for e in self.solutions):
            return baseline_solution_name(self.dataset_group)
        return None

    def solution_named(self, name: str) -> SolutionEntry:
        return next(e for e in self.solutions if e.name == name)

    def for_solution(self, name: str) -> PipelineConfig:
        """This config seen from one solution: `solution`, `campaign`, `gate` and `batch_inference`
        are that entry's, so per-solution code reads them as it reads a one-solution config."""
        entry = self.solution_named(name)
        return self.model_copy(
            update={
                "solutions": [entry],
                "solution": entry,
                "campaign": entry.campaign,
                "gate": entry.gate,
                "batch_inference": entry.batch or BatchInferenceConfig(),
            }
        )

    @property
    def all_resource_tags(self) -> dict[str, str]:
        """The tags of every resource the pipeline creates: resource_tags plus pipeline=<name>."""
        return dict(sorted({**self.resource_tags, "pipeline": self.name}.items()))

    # Derived names, so each is spelled in one place.
    @property
    def dag_ids(self) -> dict[str, str]:
        return {kind: f"{self.name}_{kind}" for kind in ("ingest", "train_deploy", "batch_inference")}

    def schema_name(self, dataset_type: str) -> str:
        return f"{self.dataset_group}-{dataset_type.lower()}"[:NAME_MAX_LENGTH]

    def dataset_name(self, dataset_type: str) -> str:
        return f"{self.dataset_group}-{dataset_type.lower()}"[:NAME_MAX_LENGTH]

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
        """Every solution, and the baseline's when a gate asks for one."""
        solutions = [entry.create_kwargs() for entry in self.solutions]
        if self.baseline_solution:
            recipe = BASELINE_RECIPES["popularity-count"]
            solutions.append(SolutionConfig(name=self.baseline_solution, recipe=recipe).create_kwargs())
        return solutions

    def personalize_filters(self) -> list[dict[str, str]]:
        return [{"name": f.name, "filter_expression": f.expression} for f in self.filters]


def load_config(path: str | Path) -> PipelineConfig:
    """Read and validate one config file; every error names the file and the key."""
    path = Path(path)
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=YAML_LOADER)
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


def config_paths(directory: str | Path | None = None) -> list[Path]:
    """Every *.yaml / *.yml in the folder, sorted by file name."""
    directory = Path(directory) if directory is not None else config_dir()
    return sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml"))


@dataclass(frozen=True)
class LoadedConfigs:
    """Each file on its own: the valid configs, and for every other file the error naming it and the key."""

    configs: dict[Path, PipelineConfig]
    errors: dict[Path, str]


def load_configs_isolated(directory: str | Path | None = None) -> LoadedConfigs:
    """Every config file validated on its own, so one team's typo stops only that team's pipeline.

    A file whose `name` or `dataset_group` an earlier file (by name order) already uses is an error
    of the later file; the earlier one keeps its DAGs.
    """
    configs: dict[Path, PipelineConfig] = {}
    errors: dict[Path, str] = {}
    seen: dict[tuple[str, str], Path] = {}
    for path in config_paths(directory):
        try:
            config = load_config(path)
            for key, value in (("name", config.name), ("dataset_group", config.dataset_group)):
                other = seen.get((key, value))
                if other is not None:
                    raise ConfigError(f"{path}: {key}: {value!r} is already used by {other}")
        except ConfigError as err:
            errors[path] = str(err)
            continue
        seen[("name", config.name)] = seen[("dataset_group", config.dataset_group)] = path
        configs[path] = config
    return LoadedConfigs(configs, errors)


def load_configs(directory: str | Path | None = None) -> list[PipelineConfig]:
    """Every config in the folder, sorted by file name; raises ConfigError (all broken files) if any is invalid."""
    loaded = load_configs_isolated(directory)
    if loaded.errors:
        raise ConfigError("\n".join(loaded.errors.values()))
    return list(loaded.configs.values())


def _describe(path: Path, err: ValidationError) -> str:
    lines = []
    for error in err.errors():
        key = ".".join(str(part) for part in error["loc"]) or "(top level)"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key (check the spelling; see the configuration reference in the README)"
        elif error["type"] == "missing":
            message = "required key is missing"
        if not error["loc"] and re.match(r"^[a-z_][\w.]*: ", message):
            lines.append(f"{path}: {message}")  # a cross-key rule that names its own key
        else:
            lines.append(f"{path}: {key}: {message}")
    return "\n".join(lines)
