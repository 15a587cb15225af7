"""Dataset groups, schemas, datasets and dataset import jobs."""

from __future__ import annotations

import shutil

from personalize_contract.data_rules import CORE_DATASET_TYPES, DatasetSchema, SchemaError

from include.local_personalize import datasets as data
from include.local_personalize.backend.core import (
    KINDS,
    MAX_PENDING_IMPORT_JOBS,
    RUNNING,
    log,
)
from include.local_personalize.errors import (
    InvalidInput,
    LimitExceeded,
    ResourceInUse,
    ResourceNotFound,
)


class DatasetGroupsMixin:
    """Part of `PersonalizeBackend`; uses `BackendCore`'s state and helpers through `self`."""

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
                for kind in (
                    "dataset",
                    "solution",
                    "filter",
                    "eventTracker",
                    "recommender",
                    "metricAttribution",
                )
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
            group_arn = dataset["datasetGroupArn"]
            running += [
                r["recommenderArn"]
                for r in self.store.list("recommender", datasetGroupArn=group_arn)
                if r["status"] in RUNNING
            ]
            running += [
                j["dataDeletionJobArn"]
                for j in self.store.list("dataDeletionJob", datasetGroupArn=group_arn)
                if j["status"] in ("PENDING", "IN_PROGRESS")
            ]
            running += [
                j["datasetExportJobArn"]
                for j in self.store.list("datasetExportJob", datasetArn=arn)
                if j["status"] in RUNNING
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
        if job.get("publishAttributionMetricsToS3") and dataset["datasetType"] == "INTERACTIONS":
            self._publish_bulk_attribution(dataset["datasetGroupArn"], frame, job["importMode"])
        self._set(arn, status="ACTIVE")

    def describe_dataset_import_job(self, params: dict) -> dict:
        return self._describe("datasetImportJob", params["datasetImportJobArn"])

    def list_dataset_import_jobs(self, params: dict) -> dict:
        return self._summaries("datasetImportJob", params)

    def _group_dataset(self, dataset_group_arn: str, dataset_type: str) -> dict | None:
        found = self.store.list("dataset", datasetGroupArn=dataset_group_arn, datasetType=dataset_type)
        return found[0] if found else None
