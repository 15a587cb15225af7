"""Recipes, solutions, solution versions and training, and GetSolutionMetrics."""

from __future__ import annotations

import shutil
import time
import uuid
from pathlib import Path

import pandas as pd
from personalize_contract import domains, quotas
from personalize_contract.recipes import RECIPE_ARN_PREFIX

from include.local_personalize import datasets as data
from include.local_personalize.backend.core import (
    RUNNING,
    GroupQuotaCheck,
    freeze_long_lived_objects,
    log,
)
from include.local_personalize.engine import api as engine
from include.local_personalize.errors import (
    InvalidInput,
    ResourceInUse,
    ResourceNotFound,
)


class SolutionsMixin:
    """Part of `PersonalizeBackend`; uses `BackendCore`'s state and helpers through `self`."""

    # recipes -------------------------------------------------------------------------------------
    def _recipes(self) -> dict[str, engine.RecipeInfo]:
        return engine.supported_recipes()

    def _recipe_body(self, info: engine.RecipeInfo) -> dict:
        return {
            "name": info.name,
            "recipeArn": RECIPE_ARN_PREFIX + info.name,
            "algorithmArn": f"arn:aws:personalize:::algorithm/{info.name}",
            "featureTransformationArn": f"arn:aws:personalize:::feature-transformation/{info.name}",
            "status": "ACTIVE",
            "description": info.description,
            "recipeType": info.recipe_type,
            "creationDateTime": 1543622400.0,
            "lastUpdatedDateTime": 1543622400.0,
        }

    def _recipe(self, recipe_arn: str) -> engine.RecipeInfo:
        name = recipe_arn.removeprefix(RECIPE_ARN_PREFIX)
        info = self._recipes().get(name) if recipe_arn.startswith(RECIPE_ARN_PREFIX) else None
        if info is None:
            raise ResourceNotFound(
                f"Recipe {recipe_arn} is not supported here; supported: "
                f"{[RECIPE_ARN_PREFIX + n for n in sorted(self._recipes())]}"
            )
        return info

    def list_recipes(self, params: dict) -> dict:
        if params.get("domain"):  # the domain's use cases, which recommenders take
            rows = [
                {**self._domain_recipe_body(u), "domain": u.domain}
                for u in domains.use_cases(params["domain"])
            ]
            rows = [{k: v for k, v in r.items() if k not in ("description", "recipeType")} for r in rows]
            return self._paginate(rows, params, "recipes")
        rows = [
            {k: v for k, v in self._recipe_body(info).items() if k in ("name", "recipeArn", "status")}
            | {"creationDateTime": 1543622400.0, "lastUpdatedDateTime": 1543622400.0}
            for info in self._recipes().values()
        ]
        return self._paginate(rows, params, "recipes")

    def describe_recipe(self, params: dict) -> dict:
        domain_recipe = self._domain_recipe(params["recipeArn"])
        if domain_recipe is not None:
            return {"recipe": domain_recipe}
        return {"recipe": self._recipe_body(self._recipe(params["recipeArn"]))}

    # solutions -----------------------------------------------------------------------------------
    def create_solution(self, params: dict) -> dict:
        group = self._get("datasetGroup", params["datasetGroupArn"])
        if params.get("performAutoML"):
            raise InvalidInput("performAutoML is not supported by the local service; name a recipeArn")
        if not params.get("recipeArn"):
            raise InvalidInput("recipeArn is required when performAutoML is false")
        self._recipe(params["recipeArn"])
        config = params.get("solutionConfig")
        if config and config.get("eventValueThreshold") is not None:
            try:
                float(config["eventValueThreshold"])
            except ValueError:
                raise InvalidInput(
                    f"solutionConfig.eventValueThreshold {config['eventValueThreshold']!r} is not a number"
                ) from None
        arn = self.arn(f"solution/{params['name']}")
        body = {
            "name": params["name"],
            "performHPO": bool(params.get("performHPO", False)),
            "performAutoML": False,
            "performAutoTraining": bool(params.get("performAutoTraining", True)),
            "recipeArn": params["recipeArn"],
            "datasetGroupArn": group["datasetGroupArn"],
            "eventType": params.get("eventType"),
            "solutionConfig": config,
            "status": "CREATE PENDING",
        }
        quota = GroupQuotaCheck(quotas.ACTIVE_SOLUTIONS, group["datasetGroupArn"], "solution")
        self._new("solution", arn, body, params.get("tags"), quota)
        self._activate_later(arn)
        return {"solutionArn": arn}

    def describe_solution(self, params: dict) -> dict:
        return self._describe("solution", params["solutionArn"])

    def list_solutions(self, params: dict) -> dict:
        return self._summaries("solution", params)

    def delete_solution(self, params: dict) -> None:
        arn = params["solutionArn"]
        solution = self._get("solution", arn)
        with self.store.lock:
            campaigns = [c["campaignArn"] for c in self.store.list("campaign", _solutionArn=arn)]
            if campaigns:
                raise ResourceInUse(f"Solution {arn} is used by campaigns {campaigns}")
            versions = self.store.list("solutionVersion", solutionArn=arn)
            running = [
                v["solutionVersionArn"] for v in versions if v["status"] in (*RUNNING, "CREATE STOPPING")
            ]
            if running:
                raise ResourceInUse(f"Solution {arn} has solution versions in progress: {running}")
            for version in versions:
                self.store.delete(version["solutionVersionArn"])
                self._models.pop(version["solutionVersionArn"], None)
            self.store.delete(arn)
        shutil.rmtree(self.models_dir / solution["name"], ignore_errors=True)

    # solution versions ---------------------------------------------------------------------------
    def create_solution_version(self, params: dict) -> dict:
        solution = self._get("solution", params["solutionArn"])
        mode = params.get("trainingMode") or "FULL"
        if mode == "AUTOTRAIN":
            raise InvalidInput("trainingMode AUTOTRAIN is set by the service; use FULL or UPDATE")
        info = self._recipe(solution["recipeArn"])
        with self.store.lock:
            if solution["status"] != "ACTIVE":
                raise ResourceInUse(f"Solution {solution['solutionArn']} is {solution['status']}, not ACTIVE")
            versions = self.store.list("solutionVersion", solutionArn=solution["solutionArn"])
            running = [
                v["solutionVersionArn"] for v in versions if v["status"] in (*RUNNING, "CREATE STOPPING")
            ]
            if running:
                raise ResourceInUse(
                    f"Solution {solution['solutionArn']} already has a version in progress: {running[0]}"
                )
            if mode == "UPDATE":
                if not info.supports_update:
                    raise InvalidInput(
                        f"trainingMode UPDATE is not supported by recipe {solution['recipeArn']}"
                    )
                if not any(v["status"] == "ACTIVE" for v in versions):
                    raise InvalidInput(
                        "trainingMode UPDATE needs an ACTIVE solution version trained with FULL"
                    )
            version_id = uuid.uuid4().hex[:8]
            arn = f"{solution['solutionArn']}/{version_id}"
            body = {
                "solutionVersionArn": arn,
                "solutionArn": solution["solutionArn"],
                "performHPO": solution["performHPO"],
                "performAutoML": False,
                "recipeArn": solution["recipeArn"],
                "eventType": solution.get("eventType"),
                "datasetGroupArn": solution["datasetGroupArn"],
                "solutionConfig": solution.get("solutionConfig"),
                "trainingMode": mode,
                "trainingType": "MANUAL",
                "status": "CREATE PENDING",
                "_versionId": version_id,
            }
            if params.get("name"):
                body["name"] = params["name"]
            self._new("solutionVersion", arn, body, params.get("tags"))
            self._refresh_latest_version(solution["solutionArn"])
        self.worker.submit(lambda: self._run_training(arn), job=True)
        return {"solutionVersionArn": arn}

    def _refresh_latest_version(self, solution_arn: str) -> None:
        versions = self.store.list("solutionVersion", solutionArn=solution_arn)
        if not versions or self.store.get(solution_arn) is None:
            return
        latest = max(versions, key=lambda v: v["creationDateTime"])
        summary = {
            k: latest[k]
            for k in ("solutionVersionArn", "status", "trainingMode", "trainingType", "creationDateTime")
            if latest.get(k) is not None
        }
        summary["lastUpdatedDateTime"] = latest["lastUpdatedDateTime"]
        if latest.get("failureReason"):
            summary["failureReason"] = latest["failureReason"]
        self.store.update(solution_arn, latestSolutionVersion=summary)

    def _set_version(self, arn: str, **changes) -> dict | None:
        with self.store.lock:
            body = self._set(arn, **changes)
            if body is not None:
                self._refresh_latest_version(body["solutionArn"])
            return body

    def training_data(self, dataset_group_arn: str) -> engine.TrainingData:
        group = self._get("datasetGroup", dataset_group_arn)
        frames: dict[str, pd.DataFrame | None] = {}
        for dataset in self.store.list("dataset", datasetGroupArn=dataset_group_arn):
            frame = self.files.load(group["name"], dataset["datasetType"])
            events = self._event_records.get(dataset_group_arn)
            if dataset["datasetType"] == "INTERACTIONS" and events:
                recorded = pd.DataFrame(events, dtype=str).fillna("")
                frame = (
                    recorded if frame is None else pd.concat([frame, recorded], ignore_index=True).fillna("")
                )
            if frame is not None:
                frame = data.typed_frame(frame, self._dataset_schema(dataset))
            frames[dataset["datasetType"]] = frame
        interactions = frames.get("INTERACTIONS")
        if interactions is None:
            interactions = pd.DataFrame({"USER_ID": [], "ITEM_ID": [], "TIMESTAMP": []})
        return engine.TrainingData(interactions, frames.get("ITEMS"), frames.get("USERS"))

    def _run_training(self, arn: str) -> None:
        version = self.store.get(arn)
        if version is None:
            return
        if version.get("_stopRequested"):
            self._set_version(arn, status="CREATE STOPPED")
            return
        started = time.time()
        self._set_version(arn, status="CREATE IN_PROGRESS")
        self.worker.pause()

        def should_stop() -> bool:
            current = self.store.peek(arn)
            return self.worker.stopping.is_set() or current is None or bool(current.get("_stopRequested"))

        try:
            previous = None
            if version["trainingMode"] == "UPDATE":
                previous = self._model(self._latest_active_version(version["solutionArn"]))
            request = engine.TrainingRequest(
                recipe=version["recipeArn"].removeprefix(RECIPE_ARN_PREFIX),
                training_mode=version["trainingMode"],
                event_type=version.get("eventType"),
                perform_hpo=version["performHPO"],
                solution_config=version.get("solutionConfig"),
            )
            model, metrics = engine.train(
                request,
                self.training_data(version["datasetGroupArn"]),
                previous=previous,
                should_stop=should_stop,
            )
            directory = self._model_dir(version)
            shutil.rmtree(directory, ignore_errors=True)
            directory.mkdir(parents=True)
            model.save(directory)
        except engine.TrainingStopped:
            if not self.worker.stopping.is_set():
                self._set_version(arn, status="CREATE STOPPED")
            return
        except (engine.InsufficientDataError, ValueError, ResourceNotFound) as err:
            self._set_version(arn, status="CREATE FAILED", failureReason=str(err))
            return
        except Exception as err:
            log.exception("training %s failed", arn)
            self._set_version(arn, status="CREATE FAILED", failureReason=f"{type(err).__name__}: {err}")
            return
        if self.worker.stopping.is_set():
            return  # shutting down: leave the version for _recover to mark as interrupted
        with self._models_lock:
            self._models[arn] = model
        hours = (time.time() - started) / 3600
        current = self.store.get(arn)
        if current is not None and current.get("_stopRequested"):
            self._set_version(arn, status="CREATE STOPPED")
            return
        self._set_version(arn, status="ACTIVE", trainingHours=round(hours, 6), _metrics=metrics)
        self._sync_campaigns(version["solutionArn"], arn)

    def _model_dir(self, version: dict) -> Path:
        solution_name = version["solutionArn"].rsplit("/", 1)[-1]
        return self.models_dir / solution_name / version["_versionId"]

    def _latest_active_version(self, solution_arn: str) -> str:
        active = [
            v for v in self.store.list("solutionVersion", solutionArn=solution_arn) if v["status"] == "ACTIVE"
        ]
        if not active:
            raise ResourceNotFound(f"Solution {solution_arn} has no ACTIVE solution version")
        return max(active, key=lambda v: v["creationDateTime"])["solutionVersionArn"]

    def _model(self, version_arn: str) -> engine.TrainedModel:
        model = self._models.get(version_arn)
        if model is not None:
            return model
        if self.store.kind_of(version_arn) == "recommender":
            return self._recommender_model(version_arn)
        with self._models_lock:
            model = self._models.get(version_arn)
            if model is None:
                version = self._get("solutionVersion", version_arn)
                if version["status"] != "ACTIVE":
                    raise InvalidInput(f"Solution version {version_arn} is {version['status']}, not ACTIVE")
                model = engine.load_model(self._model_dir(version))
                self._models[version_arn] = model
                freeze_long_lived_objects()
            return model

    def describe_solution_version(self, params: dict) -> dict:
        return self._describe("solutionVersion", params["solutionVersionArn"])

    def list_solution_versions(self, params: dict) -> dict:
        return self._summaries("solutionVersion", params)

    def stop_solution_version_creation(self, params: dict) -> None:
        arn = params["solutionVersionArn"]
        with self.store.lock:
            version = self._get("solutionVersion", arn)
            if version["status"] not in RUNNING:
                raise InvalidInput(
                    f"Solution version {arn} is {version['status']}; only CREATE PENDING or "
                    "CREATE IN_PROGRESS can be stopped"
                )
            self._set_version(arn, status="CREATE STOPPING", _stopRequested=True)

    def get_solution_metrics(self, params: dict) -> dict:
        arn = params["solutionVersionArn"]
        version = self._get("solutionVersion", arn)
        if version["status"] != "ACTIVE":
            raise ResourceInUse(
                f"Solution version {arn} is {version['status']}; metrics exist once it is ACTIVE"
            )
        return {"solutionVersionArn": arn, "metrics": version.get("_metrics") or {}}
