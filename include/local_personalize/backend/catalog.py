"""Algorithms and feature transformations behind the recipes, domain recipes, and the resource updates
(UpdateDataset, UpdateSolution) that change a resource in place and report it as a `latest...Update`."""

from __future__ import annotations

import time

from personalize_contract import domains
from personalize_contract.data_rules import DatasetSchema, SchemaError
from personalize_contract.recipes import RECIPE_ARN_PREFIX

from include.local_personalize.errors import InvalidInput, ResourceInUse, ResourceNotFound

ALGORITHM_ARN_PREFIX = "arn:aws:personalize:::algorithm/"
FEATURE_TRANSFORMATION_ARN_PREFIX = "arn:aws:personalize:::feature-transformation/"
PUBLISHED = 1543622400.0  # a fixed creation time: built-in resources do not change between calls


class CatalogMixin:
    """Part of `PersonalizeBackend`; uses `BackendCore`'s state and helpers through `self`."""

    def _domain_recipe_body(self, use_case: domains.UseCase) -> dict:
        return {
            "name": use_case.recipe,
            "recipeArn": use_case.recipe_arn,
            "status": "ACTIVE",
            "description": f"{use_case.title} ({use_case.domain} use case, served by a recommender)",
            # The type of the engine recipe that serves it (backend/recommenders.py).
            "recipeType": self._recipes()[self._engine_recipe(use_case)].recipe_type,
            "creationDateTime": PUBLISHED,
            "lastUpdatedDateTime": PUBLISHED,
        }

    def describe_algorithm(self, params: dict) -> dict:
        arn = params["algorithmArn"]
        name = arn.removeprefix(ALGORITHM_ARN_PREFIX)
        info = self._recipes().get(name) if arn.startswith(ALGORITHM_ARN_PREFIX) else None
        if info is None:
            raise ResourceNotFound(f"Could not find algorithm with arn {arn}")
        return {
            "algorithm": {
                "name": name,
                "algorithmArn": arn,
                "algorithmImage": {"name": name, "dockerURI": f"local-personalize/engine:{name}"},
                "defaultHyperParameters": {},
                "defaultHyperParameterRanges": {
                    "integerHyperParameterRanges": [],
                    "continuousHyperParameterRanges": [],
                    "categoricalHyperParameterRanges": [],
                },
                "defaultResourceConfig": {},
                "trainingInputMode": "File",
                "creationDateTime": PUBLISHED,
                "lastUpdatedDateTime": PUBLISHED,
            }
        }

    def describe_feature_transformation(self, params: dict) -> dict:
        arn = params["featureTransformationArn"]
        name = arn.removeprefix(FEATURE_TRANSFORMATION_ARN_PREFIX)
        if not arn.startswith(FEATURE_TRANSFORMATION_ARN_PREFIX) or name not in self._recipes():
            raise ResourceNotFound(f"Could not find feature transformation with arn {arn}")
        return {
            "featureTransformation": {
                "name": name,
                "featureTransformationArn": arn,
                "defaultParameters": {},
                "status": "ACTIVE",
                "creationDateTime": PUBLISHED,
                "lastUpdatedDateTime": PUBLISHED,
            }
        }

    def _domain_recipe(self, recipe_arn: str) -> dict | None:
        use_case = domains.use_case(recipe_arn) if recipe_arn.startswith(RECIPE_ARN_PREFIX) else None
        return self._domain_recipe_body(use_case) if use_case else None

    # updates -------------------------------------------------------------------------------------
    def update_dataset(self, params: dict) -> dict:
        arn = params["datasetArn"]
        with self.store.lock:
            dataset = self._get("dataset", arn)
            schema = self._get("schema", params["schemaArn"])
            if dataset["status"] != "ACTIVE":
                raise ResourceInUse(f"Dataset {arn} is {dataset['status']}, not ACTIVE")
            update = dataset.get("latestDatasetUpdate")
            if update and update["status"] in ("CREATE PENDING", "CREATE IN_PROGRESS"):
                raise ResourceInUse(f"Dataset {arn} already has an update in progress")
            try:
                DatasetSchema.from_avro(dataset["datasetType"], schema["schema"])
            except SchemaError as err:
                raise InvalidInput(
                    f"Schema {schema['schemaArn']} does not fit a {dataset['datasetType']} dataset: {err}"
                ) from err
            now = time.time()
            update = {
                "schemaArn": schema["schemaArn"],
                "status": "CREATE PENDING",
                "creationDateTime": now,
                "lastUpdatedDateTime": now,
            }
            self._set(arn, latestDatasetUpdate=update)
        self.worker.submit(
            lambda: self._finish_update(arn, "latestDatasetUpdate", {"schemaArn": schema["schemaArn"]})
        )
        return {"datasetArn": arn}

    def update_solution(self, params: dict) -> dict:
        arn = params["solutionArn"]
        with self.store.lock:
            solution = self._get("solution", arn)
            if solution["status"] != "ACTIVE":
                raise ResourceInUse(f"Solution {arn} is {solution['status']}, not ACTIVE")
            update = solution.get("latestSolutionUpdate")
            if update and update["status"] in ("CREATE PENDING", "CREATE IN_PROGRESS"):
                raise ResourceInUse(f"Solution {arn} already has an update in progress")
            now = time.time()
            update = {
                "solutionUpdateConfig": params.get("solutionUpdateConfig"),
                "performAutoTraining": params.get("performAutoTraining", solution["performAutoTraining"]),
                "performIncrementalUpdate": params.get(
                    "performIncrementalUpdate", solution.get("performIncrementalUpdate")
                ),
                "status": "CREATE PENDING",
                "creationDateTime": now,
                "lastUpdatedDateTime": now,
            }
            self._set(arn, latestSolutionUpdate=update)
        applied = {
            k: update[k] for k in ("performAutoTraining", "performIncrementalUpdate") if update[k] is not None
        }
        self.worker.submit(lambda: self._finish_update(arn, "latestSolutionUpdate", applied))
        return {"solutionArn": arn}

    def _resume_update(self, kind: str, body: dict) -> None:
        """After a restart: an update still pending finishes, as a fresh one would."""
        member = {"dataset": "latestDatasetUpdate", "solution": "latestSolutionUpdate"}.get(kind)
        update = body.get(member) if member else None
        if not update or update["status"] not in ("CREATE PENDING", "CREATE IN_PROGRESS"):
            return
        keys = ("schemaArn",) if kind == "dataset" else ("performAutoTraining", "performIncrementalUpdate")
        applied = {k: update[k] for k in keys if update.get(k) is not None}
        arn = body["datasetArn" if kind == "dataset" else "solutionArn"]
        self.worker.submit(lambda: self._finish_update(arn, member, applied))

    def _finish_update(self, arn: str, member: str, applied: dict) -> None:
        """CREATE PENDING > CREATE IN_PROGRESS > ACTIVE for a resource's latest update; then apply it."""
        for status in ("CREATE IN_PROGRESS", "ACTIVE"):
            self.worker.pause()
            with self.store.lock:
                resource = self.store.get(arn)
                if resource is None:
                    return
                update = {**resource[member], "status": status, "lastUpdatedDateTime": time.time()}
                self._set(arn, **{member: update}, **(applied if status == "ACTIVE" else {}))
