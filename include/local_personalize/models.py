"""Personalize's resources and rules: what exists, which calls are allowed, how jobs run.

Knows nothing of HTTP: the API layer hands each operation's parsed parameters to the method of the
same name (CreateDatasetGroup -> create_dataset_group) and serialises what it returns. Training is
delegated to the engine through `engine.api` only.
"""

from __future__ import annotations

import gc
import json
import logging
import re
import shutil
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from personalize_contract.data_rules import CORE_DATASET_TYPES, DatasetSchema, SchemaError
from personalize_contract.recipes import RECIPE_ARN_PREFIX

from include.local_personalize import datasets as data
from include.local_personalize import shapes
from include.local_personalize.engine import api as engine
from include.local_personalize.errors import (
    InvalidInput,
    LimitExceeded,
    ResourceAlreadyExists,
    ResourceInUse,
    ResourceNotFound,
    TooManyTags,
)
from include.local_personalize.store import StateStore
from include.local_personalize.worker import Worker


def freeze_long_lived_objects() -> None:
    """Move what exists now (loaded models, dataset frames, botocore models) out of the GC's view.

    These live as long as the server; without this a full collection walks them all and a request
    caught behind it waits 100+ ms.
    """
    gc.collect()
    gc.freeze()


log = logging.getLogger(__name__)

ACCOUNT_ID = "123456789012"
LATEST_VERSION = "/$LATEST"  # CreateCampaign / UpdateCampaign: the solution's newest ACTIVE version
MAX_TAGS = 50
MAX_PENDING_IMPORT_JOBS = 5
MAX_NUM_RESULTS = 500
DEFAULT_NUM_RESULTS = 25
RUNNING = ("CREATE PENDING", "CREATE IN_PROGRESS")
INTERRUPTED = (
    "The local Personalize service restarted while this job was in progress; the job did not finish. "
    "Create it again."
)


@dataclass(frozen=True)
class Kind:
    """How one resource kind appears on the wire."""

    key: str  # member name in Describe output, e.g. "datasetGroup"
    arn_key: str
    list_operation: str | None
    list_key: str | None
    list_parent: str | None = None  # List filter parameter, e.g. datasetGroupArn


KINDS = {
    "datasetGroup": Kind("datasetGroup", "datasetGroupArn", "ListDatasetGroups", "datasetGroups"),
    "schema": Kind("schema", "schemaArn", "ListSchemas", "schemas"),
    "dataset": Kind("dataset", "datasetArn", "ListDatasets", "datasets", "datasetGroupArn"),
    "datasetImportJob": Kind(
        "datasetImportJob", "datasetImportJobArn", "ListDatasetImportJobs", "datasetImportJobs", "datasetArn"
    ),
    "solution": Kind("solution", "solutionArn", "ListSolutions", "solutions", "datasetGroupArn"),
    "solutionVersion": Kind(
        "solutionVersion", "solutionVersionArn", "ListSolutionVersions", "solutionVersions", "solutionArn"
    ),
    "campaign": Kind("campaign", "campaignArn", "ListCampaigns", "campaigns", "solutionArn"),
    "filter": Kind("filter", "filterArn", "ListFilters", "Filters", "datasetGroupArn"),
    "eventTracker": Kind(
        "eventTracker", "eventTrackerArn", "ListEventTrackers", "eventTrackers", "datasetGroupArn"
    ),
    "batchInferenceJob": Kind(
        "batchInferenceJob",
        "batchInferenceJobArn",
        "ListBatchInferenceJobs",
        "batchInferenceJobs",
        "solutionVersionArn",
    ),
}


def public(body: dict) -> dict:
    """The resource as sent: private "_" keys and unset (None) members dropped at every level."""
    return {
        k: public(v) if isinstance(v, dict) else v
        for k, v in body.items()
        if not k.startswith("_") and v is not None
    }


def camel_to_field(name: str) -> str:
    """PutItems/PutUsers/PutEvents property keys are camelCase of the schema's field names."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper()


class GroupFrames:
    """A dataset group's records indexed for filtering, as of event `seq`; rebuilt after imports."""

    def __init__(
        self, seq: int, interactions: pd.DataFrame, items: pd.DataFrame | None, users: pd.DataFrame | None
    ):
        self.seq = seq
        self.items = items
        # Sorted by user (stable, so each user's rows keep their order): a user's history is then a
        # contiguous slice, which pandas returns without copying. It is read on every filtered request.
        self.interactions = interactions.sort_values("USER_ID", kind="stable", ignore_index=True)
        users_column = self.interactions["USER_ID"].to_numpy()
        starts = (
            np.flatnonzero(np.r_[True, users_column[1:] != users_column[:-1]]) if len(users_column) else []
        )
        ends = [*starts[1:], len(users_column)] if len(users_column) else []
        self._slices = {users_column[start]: (start, end) for start, end in zip(starts, ends, strict=True)}
        self._users = users.set_index("USER_ID", drop=False) if users is not None else None
        self._items_by_id = items.set_index("ITEM_ID", drop=False) if items is not None else None

    def history(self, user_id: str | None, events) -> pd.DataFrame:
        """The user's interactions, plus events recorded after this snapshot was taken."""
        start, end = self._slices.get(user_id, (0, 0)) if user_id else (0, 0)
        history = self.interactions.iloc[start:end]
        newer = [e for e in events if e[0] > self.seq]
        if newer:
            extra = pd.DataFrame(
                {
                    "USER_ID": [user_id] * len(newer),
                    "ITEM_ID": [e[2] for e in newer],
                    "TIMESTAMP": [int(e[4]) for e in newer],
                    "EVENT_TYPE": [e[3] for e in newer],
                }
            )
            history = pd.concat([history, extra], ignore_index=True)
        return history

    @staticmethod
    def _row(frame: pd.DataFrame | None, key: str | None) -> dict | None:
        if frame is None or not key or key not in frame.index:
            return None
        row = frame.loc[key]
        if isinstance(row, pd.DataFrame):  # an ID imported twice: the last record wins
            row = row.iloc[-1]
        return {k: v for k, v in row.items() if v is not None}

    def user(self, user_id: str | None) -> dict | None:
        return self._row(self._users, user_id)

    def item(self, item_id: str | None) -> dict | None:
        return self._row(self._items_by_id, item_id)


class PersonalizeBackend:
    def __init__(self, state_dir: Path, *, region: str = "us-east-1", transition_delay: float = 0.0):
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.region = region
        self.store = StateStore(self.state_dir / "state.sqlite")
        self.files = data.DatasetFiles(self.state_dir / "data")
        # A merge reads a dataset's records and writes them back: an import job and PutItems/PutUsers
        # merging at once would lose one side's records. Not the store lock: an import must not hold
        # up the runtime path for the length of a file rewrite.
        self._merge_lock = threading.Lock()
        self.models_dir = self.state_dir / "models"
        self.worker = Worker(transition_delay)
        self._models: dict[str, engine.TrainedModel] = {}
        self._models_lock = threading.Lock()
        # PutEvents, per (dataset group, user): [(seq, received_at, item_id, event_type, sent_at)]; and
        # per dataset group the full records, which join the bulk interactions at training time (a
        # FULL import replaces bulk data only, as on AWS).
        self._events: dict[tuple[str, str], list[tuple[int, float, str, str, float]]] = defaultdict(list)
        self._event_records: dict[str, list[dict[str, str]]] = defaultdict(list)
        self._event_seq = 0
        self._group_frames: dict[str, GroupFrames] = {}
        # Bumped (under the store lock) whenever a group's data changes, so frames built from older
        # data by a request that was overtaken are not cached.
        self._group_data_generation: dict[str, int] = defaultdict(int)
        self._filters: dict[str, object] = {}
        for row in self.store.all_events():
            self._remember_event(*row)
        self._recover()

    def close(self) -> None:
        self.worker.stop()
        self.store.close()

    # helpers -------------------------------------------------------------------------------------
    def arn(self, resource: str) -> str:
        return f"arn:aws:personalize:{self.region}:{ACCOUNT_ID}:{resource}"

    def _get(self, kind: str, arn: str) -> dict:
        body = self.store.get(arn, kind)
        if body is None:
            label = re.sub(r"(?<!^)(?=[A-Z])", " ", kind).lower()
            raise ResourceNotFound(f"Could not find {label} with arn {arn}")
        return body

    def _new(self, kind: str, arn: str, body: dict, tags: list | None = None) -> dict:
        self._check_tags(tags or [])
        now = time.time()
        body = {**body, KINDS[kind].arn_key: arn, "creationDateTime": now, "lastUpdatedDateTime": now}
        with self.store.lock:  # check and insert at once: two concurrent creates make one resource
            if self.store.get(arn) is not None:
                raise ResourceAlreadyExists(f"{KINDS[kind].key} {arn} already exists")
            self.store.put(kind, arn, body)
            if tags:
                self.store.set_tags(arn, {t["tagKey"]: t["tagValue"] for t in tags})
        return body

    def _set(self, arn: str, **changes) -> dict | None:
        """Update a resource unless it was deleted meanwhile (then None)."""
        with self.store.lock:
            if self.store.get(arn) is None:
                return None
            return self.store.update(arn, lastUpdatedDateTime=time.time(), **changes)

    def _activate_later(self, arn: str, on_active=None) -> None:
        """CREATE PENDING -> CREATE IN_PROGRESS -> ACTIVE in the background."""

        def transition() -> None:
            self.worker.pause()
            if self._set(arn, status="CREATE IN_PROGRESS") is None:
                return
            self.worker.pause()
            try:
                if on_active:
                    on_active()
            except Exception as err:
                self._set(arn, status="CREATE FAILED", failureReason=str(err))
                return
            self._set(arn, status="ACTIVE")

        self.worker.submit(transition)

    def _recover(self) -> None:
        """After a restart: jobs cut short end CREATE FAILED; plain resources finish becoming ACTIVE."""
        jobs = ("datasetImportJob", "solutionVersion", "batchInferenceJob")
        for kind in KINDS:
            for body in self.store.list(kind):
                arn = body[KINDS[kind].arn_key]
                status = body.get("status")
                if kind in jobs and status in (*RUNNING, "CREATE STOPPING"):
                    if status == "CREATE STOPPING":
                        self._set(arn, status="CREATE STOPPED")
                    else:
                        self._set(arn, status="CREATE FAILED", failureReason=INTERRUPTED)
                    if kind == "solutionVersion":
                        self._refresh_latest_version(body["solutionArn"])
                elif kind == "campaign" and status in RUNNING:
                    self._activate_later(arn, lambda b=body: self._model(b["solutionVersionArn"]))
                elif status in RUNNING:
                    self._activate_later(arn)
                if kind == "campaign":
                    update = body.get("latestCampaignUpdate")
                    if update and update.get("status") in RUNNING:
                        self._run_campaign_update(arn)
                    elif status == "ACTIVE":
                        self.worker.submit(lambda b=body: self._model(b["solutionVersionArn"]))

    def _check_tags(self, tags: list) -> None:
        if len(tags) > MAX_TAGS:
            raise TooManyTags(f"{len(tags)} tags, at most {MAX_TAGS} are allowed")

    def _paginate(self, items: list[dict], params: dict, key: str) -> dict:
        start = 0
        if params.get("nextToken"):
            try:
                start = int(params["nextToken"])
            except ValueError:
                raise InvalidInput(
                    f"nextToken {params['nextToken']!r} is not a token this service issued"
                ) from None
        size = params.get("maxResults") or 100
        if not 1 <= size <= 100:
            raise InvalidInput(f"maxResults {size} is outside 1..100")
        page = {key: items[start : start + size]}
        if start + size < len(items):
            page["nextToken"] = str(start + size)
        return page

    def _summaries(self, kind: str, params: dict) -> dict:
        spec = KINDS[kind]
        where = {}
        if spec.list_parent and params.get(spec.list_parent):
            parent_arn = params[spec.list_parent]
            where[spec.list_parent] = parent_arn
            parent_kind = self.store.kind_of(parent_arn)
            if parent_kind is None:
                raise ResourceNotFound(f"Could not find {parent_arn}")
        summary_shape = shapes.operation_model("personalize", spec.list_operation).output_shape
        members = summary_shape.members[spec.list_key].member.members
        rows = [
            {k: v for k, v in public(body).items() if k in members} for body in self.store.list(kind, **where)
        ]
        return self._paginate(rows, params, spec.list_key)

    def _describe(self, kind: str, arn: str) -> dict:
        body = public(self._get(kind, arn))
        return {KINDS[kind].key: body}

    # dataset groups ------------------------------------------------------------------------------
    def create_dataset_group(self, params: dict) -> dict:
        arn = self.arn(f"dataset-group/{params['name']}")
        body = {"name": params["name"], "status": "CREATE PENDING"}
        for key in ("roleArn", "kmsKeyArn", "domain"):
            if params.get(key):
                body[key] = params[key]
        self._new("datasetGroup", arn, body, params.get("tags"))
        self._activate_later(arn)
        out = {"datasetGroupArn": arn}
        if params.get("domain"):
            out["domain"] = params["domain"]
        return out

    def describe_dataset_group(self, params: dict) -> dict:
        return self._describe("datasetGroup", params["datasetGroupArn"])

    def list_dataset_groups(self, params: dict) -> dict:
        return self._summaries("datasetGroup", params)

    def delete_dataset_group(self, params: dict) -> None:
        arn = params["datasetGroupArn"]
        group = self._get("datasetGroup", arn)
        with self.store.lock:
            users = [
                f"{kind} {body[KINDS[kind].arn_key]}"
                for kind in ("dataset", "solution", "filter", "eventTracker")
                for body in self.store.list(kind, datasetGroupArn=arn)
            ]
            if users:
                raise ResourceInUse(f"Dataset group {arn} still has resources; delete them first: {users}")
            self.store.delete(arn)
        self.store.delete_events(arn)
        shutil.rmtree(self.files.root / group["name"], ignore_errors=True)
        self._event_records.pop(arn, None)
        for key in [k for k in self._events if k[0] == arn]:
            del self._events[key]

    # schemas -------------------------------------------------------------------------------------
    def create_schema(self, params: dict) -> dict:
        problems = {}
        for dataset_type in CORE_DATASET_TYPES:
            try:
                DatasetSchema.from_avro(dataset_type, params["schema"])
            except SchemaError as err:
                problems[dataset_type] = str(err)
        if len(problems) == len(CORE_DATASET_TYPES):
            raise InvalidInput(f"Schema fits no dataset type: {problems}")
        arn = self.arn(f"schema/{params['name']}")
        body = {"name": params["name"], "schema": params["schema"]}
        if params.get("domain"):
            body["domain"] = params["domain"]
        self._new("schema", arn, body)
        return {"schemaArn": arn}

    def describe_schema(self, params: dict) -> dict:
        return self._describe("schema", params["schemaArn"])

    def list_schemas(self, params: dict) -> dict:
        return self._summaries("schema", params)

    def delete_schema(self, params: dict) -> None:
        arn = params["schemaArn"]
        self._get("schema", arn)
        with self.store.lock:
            users = [d["datasetArn"] for d in self.store.list("dataset", schemaArn=arn)]
            if users:
                raise ResourceInUse(f"Schema {arn} is used by datasets {users}")
            self.store.delete(arn)

    # datasets ------------------------------------------------------------------------------------
    def _dataset_schema(self, dataset: dict) -> DatasetSchema:
        schema = self._get("schema", dataset["schemaArn"])
        return DatasetSchema.from_avro(dataset["datasetType"], schema["schema"])

    def create_dataset(self, params: dict) -> dict:
        group = self._get("datasetGroup", params["datasetGroupArn"])
        schema = self._get("schema", params["schemaArn"])
        dataset_type = params["datasetType"].upper()
        if dataset_type not in CORE_DATASET_TYPES:
            raise InvalidInput(
                f"datasetType {params['datasetType']!r} is not one of {list(CORE_DATASET_TYPES)}"
            )
        try:
            DatasetSchema.from_avro(dataset_type, schema["schema"])
        except SchemaError as err:
            raise InvalidInput(
                f"Schema {schema['schemaArn']} does not fit a {dataset_type} dataset: {err}"
            ) from err
        arn = self.arn(f"dataset/{group['name']}/{dataset_type}")
        body = {
            "name": params["name"],
            "datasetGroupArn": group["datasetGroupArn"],
            "datasetType": dataset_type,
            "schemaArn": schema["schemaArn"],
            "status": "CREATE PENDING",
        }
        self._new("dataset", arn, body, params.get("tags"))
        self._activate_later(arn)
        return {"datasetArn": arn}

    def describe_dataset(self, params: dict) -> dict:
        return self._describe("dataset", params["datasetArn"])

    def list_datasets(self, params: dict) -> dict:
        return self._summaries("dataset", params)

    def delete_dataset(self, params: dict) -> None:
        arn = params["datasetArn"]
        dataset = self._get("dataset", arn)
        with self.store.lock:
            running = [
                j["datasetImportJobArn"]
                for j in self.store.list("datasetImportJob", datasetArn=arn)
                if j["status"] in RUNNING
            ]
            running += [
                v["solutionVersionArn"]
                for v in self.store.list("solutionVersion", datasetGroupArn=dataset["datasetGroupArn"])
                if v["status"] in (*RUNNING, "CREATE STOPPING")
            ]
            if running:
                raise ResourceInUse(f"Dataset {arn} is in use by jobs in progress: {running}")
            self.store.delete(arn)
            for job in self.store.list("datasetImportJob", datasetArn=arn):
                self.store.delete(job["datasetImportJobArn"])
        group = self._get("datasetGroup", dataset["datasetGroupArn"])
        self.files.remove(group["name"], dataset["datasetType"])
        self._group_data_changed(dataset["datasetGroupArn"])

    # dataset import jobs -------------------------------------------------------------------------
    def create_dataset_import_job(self, params: dict) -> dict:
        dataset = self._get("dataset", params["datasetArn"])
        import_mode = params.get("importMode") or "FULL"
        location = params["dataSource"].get("dataLocation")
        if not location:
            raise InvalidInput("dataSource.dataLocation is required")
        arn = self.arn(f"dataset-import-job/{params['jobName']}")
        with self.store.lock:
            if dataset["status"] != "ACTIVE":
                raise ResourceInUse(f"Dataset {dataset['datasetArn']} is {dataset['status']}, not ACTIVE")
            running = [j for j in self.store.list("datasetImportJob") if j["status"] in RUNNING]
            same_dataset = [
                j["datasetImportJobArn"] for j in running if j["datasetArn"] == dataset["datasetArn"]
            ]
            if same_dataset and self.store.get(arn) is None:
                raise ResourceInUse(
                    f"Dataset {dataset['datasetArn']} already has an import job in progress: {same_dataset[0]}"
                )
            if len(running) >= MAX_PENDING_IMPORT_JOBS and self.store.get(arn) is None:
                raise LimitExceeded(
                    f"At most {MAX_PENDING_IMPORT_JOBS} dataset import jobs can be pending or in progress"
                )
            body = {
                "jobName": params["jobName"],
                "datasetArn": dataset["datasetArn"],
                "dataSource": {"dataLocation": location},
                "status": "CREATE PENDING",
                "importMode": import_mode,
                "publishAttributionMetricsToS3": bool(params.get("publishAttributionMetricsToS3", False)),
            }
            if params.get("roleArn"):
                body["roleArn"] = params["roleArn"]
            self._new("datasetImportJob", arn, body, params.get("tags"))
        self.worker.submit(lambda: self._run_import(arn), job=True)
        return {"datasetImportJobArn": arn}

    def _run_import(self, arn: str) -> None:
        job = self._set(arn, status="CREATE IN_PROGRESS")
        if job is None:
            return
        self.worker.pause()
        try:
            dataset = self._get("dataset", job["datasetArn"])
            group = self._get("datasetGroup", dataset["datasetGroupArn"])
            schema = self._dataset_schema(dataset)
            frame = data.read_import(job["dataSource"]["dataLocation"], schema, job["importMode"])
            with self._merge_lock:
                self.files.merge(group["name"], dataset["datasetType"], frame, job["importMode"])
        except (data.ImportFailure, ResourceNotFound, SchemaError) as err:
            self._set(arn, status="CREATE FAILED", failureReason=str(err))
            return
        except Exception as err:
            log.exception("import job %s failed", arn)
            self._set(arn, status="CREATE FAILED", failureReason=f"{type(err).__name__}: {err}")
            return
        self._group_data_changed(dataset["datasetGroupArn"])
        self._set(arn, status="ACTIVE")

    def describe_dataset_import_job(self, params: dict) -> dict:
        return self._describe("datasetImportJob", params["datasetImportJobArn"])

    def list_dataset_import_jobs(self, params: dict) -> dict:
        return self._summaries("datasetImportJob", params)

    # recipes -------------------------------------------------------------------------------------
    def _recipes(self) -> dict[str, engine.RecipeInfo]:
        return engine.supported_recipes()

    def _recipe_body(self, info: engine.RecipeInfo) -> dict:
        return {
            "name": info.name,
            "recipeArn": RECIPE_ARN_PREFIX + info.name,
            "algorithmArn": f"arn:aws:personalize:::algorithm/{info.name}",
            "featureTransformationArn": "arn:aws:personalize:::feature-transformation/sims",
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
        if params.get("domain"):
            return {"recipes": []}  # domain recipes (recommenders) are not supported locally
        rows = [
            {k: v for k, v in self._recipe_body(info).items() if k in ("name", "recipeArn", "status")}
            | {"creationDateTime": 1543622400.0, "lastUpdatedDateTime": 1543622400.0}
            for info in self._recipes().values()
        ]
        return self._paginate(rows, params, "recipes")

    def describe_recipe(self, params: dict) -> dict:
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
        self._new("solution", arn, body, params.get("tags"))
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

    # campaigns -----------------------------------------------------------------------------------
    def _active_version(self, arn: str) -> dict:
        version = self._get("solutionVersion", arn)
        if version["status"] != "ACTIVE":
            raise InvalidInput(f"Solution version {arn} is {version['status']}, not ACTIVE")
        return version

    def _serving_version(self, version_arn: str) -> dict:
        """The ACTIVE version a campaign may serve; `<solutionArn>/$LATEST` names the newest one."""
        if version_arn.endswith(LATEST_VERSION):
            solution_arn = version_arn.removesuffix(LATEST_VERSION)
            self._get("solution", solution_arn)
            try:
                version_arn = self._latest_active_version(solution_arn)
            except ResourceNotFound as err:
                raise InvalidInput(err.message) from None
        return self._active_version(version_arn)

    def _sync_campaigns(self, solution_arn: str, version_arn: str) -> None:
        """Campaigns with syncWithLatestSolutionVersion follow each new ACTIVE version of their solution."""
        for campaign in self.store.list("campaign", _solutionArn=solution_arn):
            if not (campaign.get("campaignConfig") or {}).get("syncWithLatestSolutionVersion"):
                continue
            try:
                self.update_campaign(
                    {"campaignArn": campaign["campaignArn"], "solutionVersionArn": version_arn}
                )
            except (ResourceInUse, InvalidInput, ResourceNotFound) as err:
                log.warning("campaign %s did not sync to %s: %s", campaign["campaignArn"], version_arn, err)

    def create_campaign(self, params: dict) -> dict:
        version = self._serving_version(params["solutionVersionArn"])
        tps = params.get("minProvisionedTPS", 1)
        if tps < 1:
            raise InvalidInput(f"minProvisionedTPS {tps} is below 1")
        arn = self.arn(f"campaign/{params['name']}")
        body = {
            "name": params["name"],
            "solutionVersionArn": version["solutionVersionArn"],
            "minProvisionedTPS": tps,
            "campaignConfig": params.get("campaignConfig"),
            "status": "CREATE PENDING",
            "_solutionArn": version["solutionArn"],
        }
        self._new("campaign", arn, body, params.get("tags"))
        self._activate_later(arn, lambda: self._model(version["solutionVersionArn"]))
        return {"campaignArn": arn}

    def describe_campaign(self, params: dict) -> dict:
        return self._describe("campaign", params["campaignArn"])

    def list_campaigns(self, params: dict) -> dict:
        where = {}
        if params.get("solutionArn"):
            self._get("solution", params["solutionArn"])
            where["_solutionArn"] = params["solutionArn"]
        members = (
            shapes.operation_model("personalize", "ListCampaigns")
            .output_shape.members["campaigns"]
            .member.members
        )
        rows = [
            {k: v for k, v in public(c).items() if k in members} for c in self.store.list("campaign", **where)
        ]
        return self._paginate(rows, params, "campaigns")

    def update_campaign(self, params: dict) -> dict:
        arn = params["campaignArn"]
        with self.store.lock:
            campaign = self._get("campaign", arn)
            if campaign["status"] not in ("ACTIVE", "CREATE FAILED"):
                raise ResourceInUse(
                    f"Campaign {arn} is {campaign['status']}; it must be ACTIVE or CREATE FAILED"
                )
            update = campaign.get("latestCampaignUpdate")
            if update and update["status"] in RUNNING:
                raise ResourceInUse(f"Campaign {arn} already has an update in progress")
            version = self._serving_version(
                params.get("solutionVersionArn") or campaign["solutionVersionArn"]
            )
            version_arn = version["solutionVersionArn"]
            tps = params.get("minProvisionedTPS", campaign["minProvisionedTPS"])
            if tps < 1:
                raise InvalidInput(f"minProvisionedTPS {tps} is below 1")
            now = time.time()
            update = {
                "solutionVersionArn": version_arn,
                "minProvisionedTPS": tps,
                "campaignConfig": params.get("campaignConfig", campaign.get("campaignConfig")),
                "status": "CREATE PENDING",
                "creationDateTime": now,
                "lastUpdatedDateTime": now,
                "_solutionArn": version["solutionArn"],
            }
            self._set(arn, latestCampaignUpdate=update)
        self._run_campaign_update(arn)
        return {"campaignArn": arn}

    def _run_campaign_update(self, arn: str) -> None:
        def set_update(**changes) -> dict | None:
            with self.store.lock:
                campaign = self.store.get(arn)
                if campaign is None:
                    return None
                update = {**campaign["latestCampaignUpdate"], **changes, "lastUpdatedDateTime": time.time()}
                return self._set(arn, latestCampaignUpdate=update)

        def transition() -> None:
            self.worker.pause()
            campaign = set_update(status="CREATE IN_PROGRESS")
            if campaign is None:
                return
            self.worker.pause()
            update = campaign["latestCampaignUpdate"]
            try:
                self._model(update["solutionVersionArn"])  # load before switching: no gap in serving
            except Exception as err:
                set_update(status="CREATE FAILED", failureReason=str(err))
                return
            with self.store.lock:
                if set_update(status="ACTIVE") is None:
                    return
                self._set(
                    arn,
                    status="ACTIVE",
                    failureReason=None,
                    solutionVersionArn=update["solutionVersionArn"],
                    minProvisionedTPS=update["minProvisionedTPS"],
                    campaignConfig=update.get("campaignConfig"),
                    _solutionArn=update["_solutionArn"],
                )
            self._evict_unserved_models()

        self.worker.submit(transition)

    def _evict_unserved_models(self) -> None:
        """Free models no campaign serves or is switching to; a batch job or request reloads on demand."""
        with self.store.lock:
            served = set()
            for campaign in self.store.list("campaign"):
                served.add(campaign["solutionVersionArn"])
                served.add((campaign.get("latestCampaignUpdate") or {}).get("solutionVersionArn"))
        with self._models_lock:
            for version_arn in [v for v in self._models if v not in served]:
                del self._models[version_arn]

    def delete_campaign(self, params: dict) -> None:
        arn = params["campaignArn"]
        self._get("campaign", arn)
        self.store.delete(arn)
        self._evict_unserved_models()

    # filters -------------------------------------------------------------------------------------
    def _parse_filter(self, expression: str):
        from include.local_personalize import filters

        try:
            return filters.parse_filter_expression(expression)
        except ValueError as err:
            raise InvalidInput(f"Invalid filter expression: {err}") from err

    def _check_filter_fields(self, dataset_group_arn: str, referenced: dict[str, frozenset[str]]) -> None:
        """A filter may only name fields of the group's schemas (when that dataset exists yet)."""
        dataset_types = {
            "Items": "ITEMS",
            "CurrentItem": "ITEMS",
            "Interactions": "INTERACTIONS",
            "CurrentUser": "USERS",
        }
        for dataset_name, fields in referenced.items():
            dataset = self._group_dataset(dataset_group_arn, dataset_types.get(dataset_name, ""))
            if dataset is None:
                continue
            known = {f.upper() for f in self._dataset_schema(dataset).field_names} | {"ITEMID", "ITEM_ID"}
            unknown = sorted(f for f in fields if f.upper() not in known)
            if unknown:
                raise InvalidInput(
                    f"Filter names fields not in the {dataset['datasetType']} schema: {unknown}"
                )

    def create_filter(self, params: dict) -> dict:
        group = self._get("datasetGroup", params["datasetGroupArn"])
        expression = self._parse_filter(params["filterExpression"])
        self._check_filter_fields(group["datasetGroupArn"], expression.referenced_fields)
        arn = self.arn(f"filter/{params['name']}")
        body = {
            "name": params["name"],
            "datasetGroupArn": group["datasetGroupArn"],
            "filterExpression": params["filterExpression"],
            "status": "CREATE PENDING",
        }
        self._new("filter", arn, body, params.get("tags"))
        self._activate_later(arn)
        return {"filterArn": arn}

    def describe_filter(self, params: dict) -> dict:
        return self._describe("filter", params["filterArn"])

    def list_filters(self, params: dict) -> dict:
        return self._summaries("filter", params)

    def delete_filter(self, params: dict) -> None:
        arn = params["filterArn"]
        self._get("filter", arn)
        self.store.delete(arn)
        self._filters.pop(arn, None)

    # event trackers ------------------------------------------------------------------------------
    def create_event_tracker(self, params: dict) -> dict:
        group = self._get("datasetGroup", params["datasetGroupArn"])
        with self.store.lock:
            existing = self.store.list("eventTracker", datasetGroupArn=group["datasetGroupArn"])
            if existing:
                raise ResourceAlreadyExists(
                    f"Dataset group {group['datasetGroupArn']} already has event tracker "
                    f"{existing[0]['eventTrackerArn']}; a dataset group has at most one"
                )
            if any(t["name"] == params["name"] for t in self.store.list("eventTracker")):
                raise ResourceAlreadyExists(f"An event tracker named {params['name']} already exists")
            tracking_id = str(uuid.uuid4())
            arn = self.arn(f"event-tracker/{uuid.uuid4().hex[:8]}")
            body = {
                "name": params["name"],
                "accountId": ACCOUNT_ID,
                "trackingId": tracking_id,
                "datasetGroupArn": group["datasetGroupArn"],
                "status": "CREATE PENDING",
            }
            self._new("eventTracker", arn, body, params.get("tags"))
        self._activate_later(arn)
        return {"eventTrackerArn": arn, "trackingId": tracking_id}

    def describe_event_tracker(self, params: dict) -> dict:
        return self._describe("eventTracker", params["eventTrackerArn"])

    def list_event_trackers(self, params: dict) -> dict:
        return self._summaries("eventTracker", params)

    def delete_event_tracker(self, params: dict) -> None:
        arn = params["eventTrackerArn"]
        self._get("eventTracker", arn)
        self.store.delete(arn)

    # batch inference jobs ------------------------------------------------------------------------
    def create_batch_inference_job(self, params: dict) -> dict:
        version = self._active_version(params["solutionVersionArn"])
        if params.get("filterArn"):
            self._get("filter", params["filterArn"])
        mode = params.get("batchInferenceJobMode") or "BATCH_INFERENCE"
        if mode != "BATCH_INFERENCE":
            raise InvalidInput(f"batchInferenceJobMode {mode} is not supported by the local service")
        num_results = params.get("numResults", DEFAULT_NUM_RESULTS)
        if not 1 <= num_results <= MAX_NUM_RESULTS:
            raise InvalidInput(f"numResults {num_results} is outside 1..{MAX_NUM_RESULTS}")
        arn = self.arn(f"batch-inference-job/{params['jobName']}")
        body = {
            "jobName": params["jobName"],
            "filterArn": params.get("filterArn"),
            "solutionVersionArn": version["solutionVersionArn"],
            "numResults": num_results,
            "jobInput": params["jobInput"],
            "jobOutput": params["jobOutput"],
            "batchInferenceJobConfig": params.get("batchInferenceJobConfig"),
            "roleArn": params.get("roleArn"),
            "batchInferenceJobMode": mode,
            "status": "CREATE PENDING",
        }
        self._new("batchInferenceJob", arn, body, params.get("tags"))
        self.worker.submit(lambda: self._run_batch_inference(arn), job=True)
        return {"batchInferenceJobArn": arn}

    def _run_batch_inference(self, arn: str) -> None:
        job = self._set(arn, status="CREATE IN_PROGRESS")
        if job is None:
            return
        self.worker.pause()
        try:
            self._batch_infer(job)
        except (data.ImportFailure, InvalidInput, ResourceNotFound) as err:
            self._set(arn, status="CREATE FAILED", failureReason=str(err.args[0]))
            return
        except Exception as err:
            log.exception("batch inference job %s failed", arn)
            self._set(arn, status="CREATE FAILED", failureReason=f"{type(err).__name__}: {err}")
            return
        self._set(arn, status="ACTIVE")

    def _batch_infer(self, job: dict) -> None:
        version = self._get("solutionVersion", job["solutionVersionArn"])
        in_uri = job["jobInput"]["s3DataSource"]["path"]
        out_uri = job["jobOutput"]["s3DataDestination"]["path"]
        out_bucket, out_prefix = data.split_s3_uri(out_uri)
        if out_prefix and not out_prefix.endswith("/"):
            out_prefix += "/"
        client = data.s3_client()
        for bucket, key in data.list_import_objects(in_uri):
            lines = client.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8").splitlines()
            results = []
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as err:
                    raise InvalidInput(f"s3://{bucket}/{key} line {number}: not JSON ({err.msg})") from None
                if not isinstance(record, dict):
                    raise InvalidInput(f"s3://{bucket}/{key} line {number}: expected a JSON object")
                results.append(self._batch_line(version, job, record))
            body = "".join(json.dumps(r) + "\n" for r in results)
            client.put_object(
                Bucket=out_bucket, Key=f"{out_prefix}{key.rsplit('/', 1)[-1]}.out", Body=body.encode()
            )

    def _batch_line(self, version: dict, job: dict, record: dict) -> dict:
        try:
            if record.get("itemList") is not None:
                ranked = self.rank(
                    version["solutionVersionArn"],
                    version["datasetGroupArn"],
                    str(record.get("userId", "")),
                    [str(i) for i in record["itemList"]],
                    job.get("filterArn"),
                    record.get("filterValues") or {},
                )
                output = {"recommendedItems": [i for i, _ in ranked], "scores": [s for _, s in ranked]}
            else:
                items = self.recommend(
                    version["solutionVersionArn"],
                    version["datasetGroupArn"],
                    user_id=record.get("userId"),
                    item_id=record.get("itemId"),
                    num_results=job["numResults"],
                    filter_arn=job.get("filterArn"),
                    filter_values=record.get("filterValues") or {},
                )
                output = {"recommendedItems": [i for i, _ in items], "scores": [s for _, s in items]}
            return {"input": record, "output": output, "error": None}
        except (InvalidInput, ResourceNotFound) as err:
            return {"input": record, "output": None, "error": err.message}

    def describe_batch_inference_job(self, params: dict) -> dict:
        return self._describe("batchInferenceJob", params["batchInferenceJobArn"])

    def list_batch_inference_jobs(self, params: dict) -> dict:
        return self._summaries("batchInferenceJob", params)

    # tags ----------------------------------------------------------------------------------------
    def _tagged(self, arn: str) -> None:
        if self.store.get(arn) is None:
            raise ResourceNotFound(f"Could not find resource {arn}")

    def tag_resource(self, params: dict) -> dict:
        arn = params["resourceArn"]
        self._tagged(arn)
        merged = self.store.tags(arn) | {t["tagKey"]: t["tagValue"] for t in params["tags"]}
        self._check_tags(list(merged))
        self.store.set_tags(arn, merged)
        return {}

    def untag_resource(self, params: dict) -> dict:
        arn = params["resourceArn"]
        self._tagged(arn)
        self.store.remove_tags(arn, params["tagKeys"])
        return {}

    def list_tags_for_resource(self, params: dict) -> dict:
        arn = params["resourceArn"]
        self._tagged(arn)
        return {"tags": [{"tagKey": k, "tagValue": v} for k, v in self.store.tags(arn).items()]}

    # runtime -------------------------------------------------------------------------------------
    def _serving(self, campaign_arn: str) -> dict:
        campaign = self.store.peek(campaign_arn)
        if campaign is None or self.store.kind_of(campaign_arn) != "campaign":
            raise ResourceNotFound(f"Campaign {campaign_arn} does not exist")
        if campaign["status"] != "ACTIVE":
            raise ResourceNotFound(f"Campaign {campaign_arn} is {campaign['status']}, not ACTIVE")
        return campaign

    def _recent_items(self, dataset_group_arn: str, user_id: str | None, since: float) -> list[str]:
        if not user_id:
            return []
        return [
            item
            for _, received, item, _, _ in self._events.get((dataset_group_arn, user_id), ())
            if received >= since
        ]

    def _filter_sets(
        self,
        filter_arn: str | None,
        dataset_group_arn: str,
        user_id: str | None,
        item_id: str | None,
        values: dict,
    ) -> tuple[frozenset[str] | None, frozenset[str]]:
        if not filter_arn:
            return None, frozenset()
        flt = self.store.peek(filter_arn)
        if flt is None or self.store.kind_of(filter_arn) != "filter":
            raise ResourceNotFound(f"Filter {filter_arn} does not exist")
        if flt["status"] != "ACTIVE":
            raise InvalidInput(f"Filter {filter_arn} is {flt['status']}, not ACTIVE")
        if flt["datasetGroupArn"] != dataset_group_arn:
            raise InvalidInput(f"Filter {filter_arn} belongs to another dataset group than the campaign")
        expression = self._filters.get(filter_arn)
        if expression is None:
            expression = self._filters[filter_arn] = self._parse_filter(flt["filterExpression"])
        group = self._group_frames_for(dataset_group_arn)
        try:
            return expression.apply(
                user_interactions=group.history(user_id, self._events.get((dataset_group_arn, user_id), ())),
                items=group.items,
                user=group.user(user_id),
                values=values,
                current_item=group.item(item_id),
            )
        except ValueError as err:
            raise InvalidInput(str(err)) from err

    def _group_data_changed(self, dataset_group_arn: str) -> None:
        """Call after the group's stored records changed (import, PutItems/PutUsers, dataset deleted)."""
        with self.store.lock:
            self._group_data_generation[dataset_group_arn] += 1
            self._group_frames.pop(dataset_group_arn, None)

    def _group_frames_for(self, dataset_group_arn: str) -> GroupFrames:
        cached = self._group_frames.get(dataset_group_arn)
        if cached is None:
            with self.store.lock:
                generation = self._group_data_generation[dataset_group_arn]
                seq = self._event_seq
                training = self.training_data(dataset_group_arn)
            cached = GroupFrames(seq, training.interactions, training.items, training.users)
            with self.store.lock:
                if self._group_data_generation[dataset_group_arn] != generation:
                    return cached  # the data changed meanwhile: serve this request, cache nothing
                self._group_frames[dataset_group_arn] = cached
            freeze_long_lived_objects()
        return cached

    def recommend(
        self,
        version_arn: str,
        dataset_group_arn: str,
        *,
        user_id: str | None,
        item_id: str | None,
        num_results: int,
        filter_arn: str | None,
        filter_values: dict,
        trained_at: float | None = None,
    ) -> list[tuple[str, float]]:
        if not user_id and not item_id:
            raise InvalidInput("userId or itemId is required")
        if not 1 <= num_results <= MAX_NUM_RESULTS:
            raise InvalidInput(f"numResults {num_results} is outside 1..{MAX_NUM_RESULTS}")
        model = self._model(version_arn)
        if trained_at is None:
            trained_at = self._get("solutionVersion", version_arn)["creationDateTime"]
        allowed, excluded = self._filter_sets(filter_arn, dataset_group_arn, user_id, item_id, filter_values)
        try:
            return model.recommend(
                user_id,
                item_id=item_id,
                num_results=num_results,
                recent_item_ids=self._recent_items(dataset_group_arn, user_id, trained_at),
                allowed_item_ids=allowed,
                excluded_item_ids=excluded,
            )
        except ValueError as err:
            raise InvalidInput(str(err)) from err

    def rank(
        self,
        version_arn: str,
        dataset_group_arn: str,
        user_id: str,
        item_ids: list[str],
        filter_arn: str | None,
        filter_values: dict,
        trained_at: float | None = None,
    ) -> list[tuple[str, float]]:
        if not user_id:
            raise InvalidInput("userId is required for a personalized ranking")
        model = self._model(version_arn)
        if trained_at is None:
            trained_at = self._get("solutionVersion", version_arn)["creationDateTime"]
        allowed, excluded = self._filter_sets(filter_arn, dataset_group_arn, user_id, None, filter_values)
        candidates = [i for i in item_ids if (allowed is None or i in allowed) and i not in excluded]
        try:
            return model.rank(
                user_id,
                candidates,
                recent_item_ids=self._recent_items(dataset_group_arn, user_id, trained_at),
            )
        except ValueError as err:
            raise InvalidInput(str(err)) from err

    def get_recommendations(self, params: dict) -> dict:
        if params.get("recommenderArn"):
            raise InvalidInput("recommenders (domain dataset groups) are not supported by the local service")
        if not params.get("campaignArn"):
            raise InvalidInput("campaignArn is required")
        campaign = self._serving(params["campaignArn"])
        version_arn = campaign["solutionVersionArn"]
        version = self.store.peek(version_arn)
        items = self.recommend(
            version_arn,
            version["datasetGroupArn"],
            user_id=params.get("userId"),
            item_id=params.get("itemId"),
            num_results=params.get("numResults", DEFAULT_NUM_RESULTS),
            filter_arn=params.get("filterArn"),
            filter_values=params.get("filterValues") or {},
            trained_at=version["creationDateTime"],
        )
        return {
            "itemList": [{"itemId": i, "score": round(float(s), 7)} for i, s in items],
            "recommendationId": f"RID-{uuid.uuid4()}",
        }

    def get_personalized_ranking(self, params: dict) -> dict:
        campaign = self._serving(params["campaignArn"])
        version_arn = campaign["solutionVersionArn"]
        version = self.store.peek(version_arn)
        ranked = self.rank(
            version_arn,
            version["datasetGroupArn"],
            params["userId"],
            params["inputList"],
            params.get("filterArn"),
            params.get("filterValues") or {},
            trained_at=version["creationDateTime"],
        )
        return {
            "personalizedRanking": [{"itemId": i, "score": round(float(s), 7)} for i, s in ranked],
            "recommendationId": f"RID-{uuid.uuid4()}",
        }

    # events --------------------------------------------------------------------------------------
    def _remember_event(
        self,
        dataset_group_arn: str,
        user_id: str,
        item_id: str,
        event_type: str,
        sent_at: float,
        received_at: float,
        record_json: str,
    ) -> None:
        self._event_seq += 1
        self._events[(dataset_group_arn, user_id)].append(
            (self._event_seq, received_at, item_id, event_type, sent_at)
        )
        self._event_records[dataset_group_arn].append(json.loads(record_json))

    def _group_dataset(self, dataset_group_arn: str, dataset_type: str) -> dict | None:
        found = self.store.list("dataset", datasetGroupArn=dataset_group_arn, datasetType=dataset_type)
        return found[0] if found else None

    @staticmethod
    def _properties(raw: str | None, where: str) -> dict[str, str]:
        if not raw:
            return {}
        try:
            properties = json.loads(raw)
        except json.JSONDecodeError as err:
            raise InvalidInput(f"{where}.properties is not a JSON object: {err.msg}") from None
        if not isinstance(properties, dict):
            raise InvalidInput(f"{where}.properties is not a JSON object")
        return {
            camel_to_field(k): ("|".join(map(str, v)) if isinstance(v, list) else str(v))
            for k, v in properties.items()
        }

    def _check_against(self, schema: DatasetSchema, record: dict[str, str], where: str) -> None:
        unknown = sorted(set(record) - set(schema.field_names))
        if unknown:
            raise InvalidInput(f"{where}: fields not in the dataset's schema: {unknown}")
        violation = schema.check_record(record)
        if violation:
            raise InvalidInput(f"{where}: {violation.reason}")

    def put_events(self, params: dict) -> None:
        trackers = [t for t in self.store.list("eventTracker") if t["trackingId"] == params["trackingId"]]
        if not trackers:
            raise ResourceNotFound(f"No event tracker has trackingId {params['trackingId']}")
        group_arn = trackers[0]["datasetGroupArn"]
        dataset = self._group_dataset(group_arn, "INTERACTIONS")
        if dataset is None:
            raise InvalidInput(f"Dataset group {group_arn} has no INTERACTIONS dataset to record events in")
        schema = self._dataset_schema(dataset)
        user_id = params.get("userId") or params["sessionId"]
        records = []
        for index, event in enumerate(params["eventList"]):
            where = f"eventList[{index}]"
            if not event.get("itemId"):
                raise InvalidInput(f"{where}.itemId is required to record an interaction")
            record = {"USER_ID": user_id, "ITEM_ID": event["itemId"], "TIMESTAMP": str(int(event["sentAt"]))}
            record |= self._properties(event.get("properties"), where)
            optional = {
                "EVENT_TYPE": event.get("eventType"),
                "EVENT_VALUE": event.get("eventValue"),
                "RECOMMENDATION_ID": event.get("recommendationId"),
                "IMPRESSION": "|".join(event["impression"]) if event.get("impression") else None,
                "EVENT_ID": event.get("eventId"),
            }
            record |= {k: str(v) for k, v in optional.items() if v is not None and k in schema.field_names}
            self._check_against(schema, record, where)
            records.append(record)
        received = time.time()
        with self.store.lock:
            rows = [
                (
                    group_arn,
                    user_id,
                    r["ITEM_ID"],
                    r.get("EVENT_TYPE", ""),
                    float(r["TIMESTAMP"]),
                    received,
                    json.dumps(r),
                )
                for r in records
            ]
            self.store.add_events(rows)
            for row in rows:
                self._remember_event(*row)

    def _put_records(self, params: dict, dataset_type: str, key: str, id_key: str, id_field: str) -> None:
        dataset = self._get("dataset", params["datasetArn"])
        if dataset["datasetType"] != dataset_type:
            raise InvalidInput(
                f"Dataset {dataset['datasetArn']} is {dataset['datasetType']}, not {dataset_type}"
            )
        schema = self._dataset_schema(dataset)
        records = []
        for index, entry in enumerate(params[key]):
            where = f"{key}[{index}]"
            record = {id_field: entry[id_key]} | self._properties(entry.get("properties"), where)
            self._check_against(schema, record, where)
            records.append(record)
        group = self._get("datasetGroup", dataset["datasetGroupArn"])
        frame = pd.DataFrame(
            [[r.get(f, "") for f in schema.field_names] for r in records], columns=schema.field_names
        )
        with self._merge_lock:
            self.files.merge(group["name"], dataset_type, frame, "INCREMENTAL")
        self._group_data_changed(dataset["datasetGroupArn"])

    def put_items(self, params: dict) -> None:
        self._put_records(params, "ITEMS", "items", "itemId", "ITEM_ID")

    def put_users(self, params: dict) -> None:
        self._put_records(params, "USERS", "users", "userId", "USER_ID")
