"""The dataset group and its standing resources (schemas, datasets, solutions, filters, event tracker)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from personalize_contract.data_rules import DATASET_TYPES

from personalize.kinds import DATASET, DATASET_GROUP, EVENT_TRACKER, FILTER, SOLUTION
from personalize.links import (
    PersonalizeDatasetGroupLink,
)
from personalize.operators.base import CREATE_TEMPLATE_FIELDS, PersonalizeBaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class PersonalizeEnsureResourcesOperator(PersonalizeBaseOperator):
    """
    Create what is missing of a dataset group and its resources, adopt what exists, wait until ACTIVE.

    Order follows Personalize's dependencies: the dataset group; then schemas and datasets; then
    solutions, filters and the event tracker. A schema whose definition differs from the existing
    schema of the same name is an error naming the fields (schemas cannot change).

    :param dataset_group_name: Name of the dataset group. (templated)
    :param datasets: ``{dataset_type: {"dataset_name", "schema_name", "schema"}}``; ``schema`` is
        the Avro schema as a JSON string. (templated)
    :param solutions: ``[{"name", "recipe_arn", "event_type"?, "perform_hpo"?,
        "perform_auto_training"? (default False), "solution_config"?}]``. (templated)
    :param filters: ``[{"name", "filter_expression"}]``. (templated)
    :param event_tracker_name: Name of the event tracker to ensure, if any. (templated)
    :param role_arn: IAM role for the dataset group (needed with a KMS key). (templated)
    :param kms_key_arn: KMS key to encrypt the dataset group. (templated)
    :param extra_create_kwargs: Here keyed by resource: ``{"dataset_group" | "schema" | "dataset" |
        "solution" | "filter" | "event_tracker": {member: value}}``. (templated)
    :param wait_for_completion: The dataset group and datasets are always waited for, because
        what follows needs them ACTIVE; False skips waiting for solutions, filters and the tracker.

    Returns ``{"dataset_group_arn", "schema_arns", "dataset_arns", "solution_arns", "filter_arns",
    "event_tracker_arn", "tracking_id", "new_datasets"}``; ``new_datasets`` lists the dataset
    types this task created (across retries of the same try), e.g. to run a first FULL import.
    """

    template_fields: Sequence[str] = aws_template_fields(
        "dataset_group_name",
        "datasets",
        "solutions",
        "filters",
        "event_tracker_name",
        "role_arn",
        "kms_key_arn",
        *CREATE_TEMPLATE_FIELDS,
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {
        **PersonalizeBaseOperator.template_fields_renderers,
        "datasets": "json",
        "solutions": "json",
        "filters": "json",
    }
    operator_extra_links = (PersonalizeDatasetGroupLink(),)
    default_waiter_delay = 10
    default_waiter_max_attempts = 90

    DATASET_KEYS = frozenset({"dataset_name", "schema_name", "schema"})
    SOLUTION_KEYS = frozenset(
        {"name", "recipe_arn", "event_type", "perform_hpo", "perform_auto_training", "solution_config"}
    )
    FILTER_KEYS = frozenset({"name", "filter_expression"})
    RESOURCES = ("dataset_group", "schema", "dataset", "solution", "filter", "event_tracker")

    def __init__(
        self,
        *,
        dataset_group_name: str,
        datasets: Mapping[str, Mapping[str, str]],
        solutions: Sequence[Mapping[str, Any]] = (),
        filters: Sequence[Mapping[str, str]] = (),
        event_tracker_name: str | None = None,
        role_arn: str | None = None,
        kms_key_arn: str | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.dataset_group_name = dataset_group_name
        self.datasets = datasets
        self.solutions = list(solutions)
        self.filters = list(filters)
        self.event_tracker_name = event_tracker_name
        self.role_arn = role_arn
        self.kms_key_arn = kms_key_arn

    def initial_state(self) -> dict[str, Any]:
        self._validate_specs()
        return {"new_datasets": []}

    def _validate_specs(self) -> None:
        def check(label: str, spec: Any, allowed: frozenset[str], required: set[str]) -> None:
            if not isinstance(spec, Mapping):
                raise ValueError(f"{label} must be a mapping, got {type(spec).__name__}")
            if unknown := set(spec) - allowed:
                raise ValueError(f"{label} has unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}")
            if missing := required - set(spec):
                raise ValueError(f"{label} is missing {sorted(missing)}")

        if not self.datasets:
            raise ValueError("datasets is empty: a dataset group needs at least an INTERACTIONS dataset")
        for dataset_type, spec in self.datasets.items():
            if dataset_type not in DATASET_TYPES:
                raise ValueError(
                    f"datasets has unknown dataset type {dataset_type!r}; expected {DATASET_TYPES}"
                )
            check(f"datasets[{dataset_type!r}]", spec, self.DATASET_KEYS, set(self.DATASET_KEYS))
        for index, spec in enumerate(self.solutions):
            check(f"solutions[{index}]", spec, self.SOLUTION_KEYS, {"name", "recipe_arn"})
        for index, spec in enumerate(self.filters):
            check(f"filters[{index}]", spec, self.FILTER_KEYS, set(self.FILTER_KEYS))
        check("extra_create_kwargs", self.extra_create_kwargs or {}, frozenset(self.RESOURCES), set())

    def _extra(self, resource: str) -> dict[str, Any]:
        """Tags (every resource but schemas, which take none) and this resource's extra members."""
        extra = (self.extra_create_kwargs or {}).get(resource)
        return self.create_kwargs(extra, taggable=resource != "schema")

    def step(self, context: Context, new_datasets: list[str]) -> Any:
        hook = self.hook
        group_arn, _ = hook.get_or_create_dataset_group(
            self.dataset_group_name,
            role_arn=self.role_arn,
            kms_key_arn=self.kms_key_arn,
            create_kwargs=self._extra("dataset_group"),
        )
        self._persist_link(context, PersonalizeDatasetGroupLink, dataset_group=group_arn)
        if pending := self._pending(DATASET_GROUP, group_arn, blocking=True):
            return pending

        schema_arns, dataset_arns = {}, {}
        for dataset_type, spec in self.datasets.items():
            schema_arns[dataset_type], _ = hook.get_or_create_schema(
                spec["schema_name"], spec["schema"], create_kwargs=self._extra("schema")
            )
            dataset_arns[dataset_type], created = hook.get_or_create_dataset(
                dataset_group_arn=group_arn,
                dataset_type=dataset_type,
                name=spec["dataset_name"],
                schema_arn=schema_arns[dataset_type],
                create_kwargs=self._extra("dataset"),
            )
            if created and dataset_type not in new_datasets:
                new_datasets.append(dataset_type)
        for arn in dataset_arns.values():
            if pending := self._pending(DATASET, arn, blocking=True):
                return pending

        solution_arns = {}
        for spec in self.solutions:
            solution_arns[spec["name"]], _ = hook.get_or_create_solution(
                name=spec["name"],
                dataset_group_arn=group_arn,
                recipe_arn=spec["recipe_arn"],
                event_type=spec.get("event_type"),
                perform_hpo=spec.get("perform_hpo", False),
                perform_auto_training=spec.get("perform_auto_training", False),
                solution_config=spec.get("solution_config"),
                create_kwargs=self._extra("solution"),
            )
        filter_arns = {}
        for spec in self.filters:
            filter_arns[spec["name"]], _ = hook.get_or_create_filter(
                name=spec["name"],
                dataset_group_arn=group_arn,
                filter_expression=spec["filter_expression"],
                create_kwargs=self._extra("filter"),
            )
        event_tracker_arn = tracking_id = None
        if self.event_tracker_name:
            event_tracker_arn, tracking_id, _ = hook.get_or_create_event_tracker(
                name=self.event_tracker_name,
                dataset_group_arn=group_arn,
                create_kwargs=self._extra("event_tracker"),
            )
        result = {
            "dataset_group_arn": group_arn,
            "schema_arns": schema_arns,
            "dataset_arns": dataset_arns,
            "solution_arns": solution_arns,
            "filter_arns": filter_arns,
            "event_tracker_arn": event_tracker_arn,
            "tracking_id": tracking_id,
            "new_datasets": list(new_datasets),
        }
        last_level = (
            [(SOLUTION, arn) for arn in solution_arns.values()]
            + [(FILTER, arn) for arn in filter_arns.values()]
            + ([(EVENT_TRACKER, event_tracker_arn)] if event_tracker_arn else [])
        )
        for kind, arn in last_level:
            if pending := self._pending(kind, arn, result=result):
                return pending
        return result
