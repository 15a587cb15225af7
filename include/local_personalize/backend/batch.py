"""Batch inference jobs."""

from __future__ import annotations

import json

from include.local_personalize import datasets as data
from include.local_personalize.backend.core import (
    DEFAULT_NUM_RESULTS,
    MAX_NUM_RESULTS,
    log,
)
from include.local_personalize.errors import (
    InvalidInput,
    ResourceNotFound,
)


class BatchJobsMixin:
    """Part of `PersonalizeBackend`; uses `BackendCore`'s state and helpers through `self`."""

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
