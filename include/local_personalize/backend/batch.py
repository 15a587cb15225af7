"""Batch inference jobs."""

from __future__ import annotations

from include.local_personalize import datasets as data
from include.local_personalize.backend.core import (
    DEFAULT_NUM_RESULTS,
    MAX_NUM_RESULTS,
    answer_json_lines,
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
        mode = params.get("batchInferenceJobMode") or "BATCH_INFERENCE"
        if mode != "BATCH_INFERENCE":
            raise InvalidInput(f"batchInferenceJobMode {mode} is not supported by the local service")
        arn = self._new_batch_job(
            "batchInferenceJob",
            "batch-inference-job",
            params,
            version,
            default_results=DEFAULT_NUM_RESULTS,
            max_results=MAX_NUM_RESULTS,
            run=self._run_batch_inference,
            batchInferenceJobConfig=params.get("batchInferenceJobConfig"),
            roleArn=params.get("roleArn"),
            batchInferenceJobMode=mode,
        )
        return {"batchInferenceJobArn": arn}

    def _run_batch_inference(self, arn: str) -> None:
        self._run_job(arn, self._batch_infer, (data.ImportFailure, InvalidInput, ResourceNotFound))

    def _batch_infer(self, job: dict) -> None:
        version = self._get("solutionVersion", job["solutionVersionArn"])

        def answer(record: object, where: str) -> dict:
            if not isinstance(record, dict):
                raise InvalidInput(f"{where}: expected a JSON object")
            return self._batch_line(version, job, record)

        answer_json_lines(job, answer)

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
