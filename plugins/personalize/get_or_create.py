"""The idempotent get-or-create helpers of ``PersonalizeHook`` (a mixin of it): every create first
looks the resource up by name, and a ``ResourceAlreadyExistsException`` (another writer won the
race) means describe and adopt, never fail. An existing resource whose immutable definition
differs from the requested one (schema, dataset's schema, solution's recipe, filter expression) is a
``PersonalizeResourceConflictError``: Personalize cannot change it, so a new name is needed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from personalize_contract.data_rules import DATASET_TYPES

from personalize.create_kwargs import with_create_kwargs
from personalize.errors import PersonalizeResourceConflictError
from personalize.kinds import DATASET, EVENT_TRACKER, FILTER, SOLUTION, schema_differences


class GetOrCreateMixin:
    """Part of ``PersonalizeHook``: uses its ``conn``, ``describe``, ``_find``, ``_paginate``,
    ``find_*`` and ``create_or_adopt`` through ``self``."""

    # Each get_or_create_* takes `create_kwargs`: more members for its Create* call (tags, domain,
    # ...), passed only when it creates; see `with_create_kwargs`.

    def get_or_create_dataset_group(
        self,
        name: str,
        *,
        role_arn: str | None = None,
        kms_key_arn: str | None = None,
        create_kwargs: Mapping[str, Any] | None = None,
    ) -> tuple[str, bool]:
        """Return (ARN, created) of the dataset group called ``name``."""
        if arn := self.find_dataset_group(name):
            return arn, False
        params = {"name": name, "roleArn": role_arn, "kmsKeyArn": kms_key_arn}
        params = with_create_kwargs(
            "CreateDatasetGroup", {k: v for k, v in params.items() if v}, create_kwargs
        )

        def create() -> str:
            response = self.conn.create_dataset_group(**params)
            return response["datasetGroupArn"]

        return self.create_or_adopt("dataset group", name, create, lambda: self.find_dataset_group(name))

    def get_or_create_schema(
        self, name: str, schema: str, create_kwargs: Mapping[str, Any] | None = None
    ) -> tuple[str, bool]:
        """Return (ARN, created) of the schema; an existing one with another definition is an error."""
        try:
            json.loads(schema)
        except ValueError as error:
            raise ValueError(f"Schema {name!r} is not a valid Avro JSON document: {error}") from error
        arn = self.find_schema(name)
        created = False
        if arn is None:

            def create() -> str:
                params = with_create_kwargs("CreateSchema", {"name": name, "schema": schema}, create_kwargs)
                return self.conn.create_schema(**params)["schemaArn"]

            arn, created = self.create_or_adopt("schema", name, create, lambda: self.find_schema(name))
        if not created:
            existing = self.conn.describe_schema(schemaArn=arn)["schema"]["schema"]
            if differences := schema_differences(existing, schema):
                raise PersonalizeResourceConflictError(
                    f"Personalize schema {name!r} ({arn}) already exists with a different definition: "
                    f"{'; '.join(differences)}. Schemas cannot be changed: give the new definition a "
                    "new schema name."
                )
        return arn, created

    def get_or_create_dataset(
        self,
        *,
        dataset_group_arn: str,
        dataset_type: str,
        name: str,
        schema_arn: str,
        create_kwargs: Mapping[str, Any] | None = None,
    ) -> tuple[str, bool]:
        """Return (ARN, created) of the group's dataset of ``dataset_type`` (one per type per group)."""
        if dataset_type not in DATASET_TYPES:
            raise ValueError(f"Unknown dataset type {dataset_type!r}; expected one of {DATASET_TYPES}")

        def find() -> str | None:
            return self._find(
                "list_datasets",
                "datasets",
                "datasetArn",
                dataset_type,
                name_key="datasetType",
                datasetGroupArn=dataset_group_arn,
            )

        if arn := find():
            existing = self.describe(DATASET, arn)
            if existing["schemaArn"] != schema_arn:
                raise PersonalizeResourceConflictError(
                    f"Personalize dataset {existing['name']!r} ({dataset_type}, {arn}) uses schema "
                    f"{existing['schemaArn']}, not the requested {schema_arn}."
                )
            return arn, False

        def create() -> str:
            params = {
                "name": name,
                "schemaArn": schema_arn,
                "datasetGroupArn": dataset_group_arn,
                "datasetType": dataset_type,
            }
            return self.conn.create_dataset(**with_create_kwargs("CreateDataset", params, create_kwargs))[
                "datasetArn"
            ]

        return self.create_or_adopt("dataset", name, create, find)

    def get_or_create_solution(
        self,
        *,
        name: str,
        dataset_group_arn: str,
        recipe_arn: str,
        event_type: str | None = None,
        perform_hpo: bool = False,
        perform_auto_training: bool = False,
        solution_config: Mapping[str, Any] | None = None,
        create_kwargs: Mapping[str, Any] | None = None,
    ) -> tuple[str, bool]:
        """
        Return (ARN, created) of the solution called ``name``.

        ``perform_auto_training`` defaults to False, unlike the API: automatic training retrains
        (and bills) every seven days behind the pipeline's back.
        """

        def find() -> str | None:
            return self.find_solution(name)

        if (arn := find()) is None:
            params: dict[str, Any] = {
                "name": name,
                "datasetGroupArn": dataset_group_arn,
                "recipeArn": recipe_arn,
                "performHPO": perform_hpo,
                "performAutoTraining": perform_auto_training,
            }
            if event_type:
                params["eventType"] = event_type
            if solution_config:
                params["solutionConfig"] = dict(solution_config)
            params = with_create_kwargs("CreateSolution", params, create_kwargs)
            arn, created = self.create_or_adopt(
                "solution", name, lambda: self.conn.create_solution(**params)["solutionArn"], find
            )
            if created:
                return arn, True
        existing = self.describe(SOLUTION, arn)
        for attribute, requested in (("datasetGroupArn", dataset_group_arn), ("recipeArn", recipe_arn)):
            if existing.get(attribute) != requested:
                raise PersonalizeResourceConflictError(
                    f"Personalize solution {name!r} ({arn}) has {attribute} {existing.get(attribute)}, "
                    f"not the requested {requested}."
                )
        return arn, False

    def get_or_create_filter(
        self,
        *,
        name: str,
        dataset_group_arn: str,
        filter_expression: str,
        create_kwargs: Mapping[str, Any] | None = None,
    ) -> tuple[str, bool]:
        """Return (ARN, created) of the filter; an existing one with another expression is an error."""

        def find() -> str | None:
            return self.find_filter(name)

        if (arn := find()) is None:

            def create() -> str:
                params = {
                    "name": name,
                    "datasetGroupArn": dataset_group_arn,
                    "filterExpression": filter_expression,
                }
                return self.conn.create_filter(**with_create_kwargs("CreateFilter", params, create_kwargs))[
                    "filterArn"
                ]

            arn, created = self.create_or_adopt("filter", name, create, find)
            if created:
                return arn, True
        existing = self.describe(FILTER, arn)
        if existing.get("filterExpression") != filter_expression:
            raise PersonalizeResourceConflictError(
                f"Personalize filter {name!r} ({arn}) has expression {existing.get('filterExpression')!r}, "
                f"not the requested {filter_expression!r}. Filters cannot be changed: use a new name."
            )
        return arn, False

    def get_or_create_event_tracker(
        self, *, name: str, dataset_group_arn: str, create_kwargs: Mapping[str, Any] | None = None
    ) -> tuple[str, str, bool]:
        """Return (ARN, trackingId, created); a dataset group holds at most one event tracker."""

        def find() -> str | None:
            for summary in self._paginate(
                "list_event_trackers", "eventTrackers", datasetGroupArn=dataset_group_arn
            ):
                if summary["name"] != name:
                    self.log.warning(
                        "Dataset group %s already has event tracker %r; using it instead of creating %r",
                        dataset_group_arn,
                        summary["name"],
                        name,
                    )
                return summary["eventTrackerArn"]
            return None

        arn = find()
        created = False
        if arn is None:

            def create() -> str:
                params = {"name": name, "datasetGroupArn": dataset_group_arn}
                return self.conn.create_event_tracker(
                    **with_create_kwargs("CreateEventTracker", params, create_kwargs)
                )["eventTrackerArn"]

            arn, created = self.create_or_adopt("event tracker", name, create, find)
        return arn, self.describe(EVENT_TRACKER, arn)["trackingId"], created
