"""Batch segment jobs: users for items, from a solution version of a User-Segmentation recipe.

AWS runs them on aws-item-affinity (input lines {"itemId": ...}) and aws-item-attribute-affinity
(input lines {"itemAttributes": ...}); the local engine trains aws-item-affinity, and a job on any
other recipe is refused at CreateBatchSegmentJob naming the recipes that serve segments. Output, one
JSON line per input line: {"input": {...}, "output": {"usersList": [...]}, "error": null} in
`<path><input file name>.out`. Statuses as for batch inference jobs here (CREATE PENDING >
CREATE IN_PROGRESS > ACTIVE | CREATE FAILED; the model documents PENDING / IN PROGRESS spellings).
"""

from __future__ import annotations

import numpy as np
from personalize_contract.recipes import RECIPE_ARN_PREFIX

from include.local_personalize import datasets as data
from include.local_personalize.backend.core import answer_json_lines
from include.local_personalize.errors import InvalidInput, ResourceNotFound

SEGMENT_RECIPES = ("aws-item-affinity", "aws-item-attribute-affinity")
DEFAULT_SEGMENT_USERS = 25
MAX_SEGMENT_USERS = 5_000_000  # CreateBatchSegmentJob numResults: "at most 5 million users per segment"


class BatchSegmentsMixin:
    """Part of `PersonalizeBackend`; uses `BackendCore`'s state and helpers through `self`."""

    def create_batch_segment_job(self, params: dict) -> dict:
        version = self._active_version(params["solutionVersionArn"])
        recipe = version["recipeArn"].removeprefix(RECIPE_ARN_PREFIX)
        if recipe not in SEGMENT_RECIPES:
            raise InvalidInput(
                f"Solution version {version['solutionVersionArn']} is of recipe {recipe}; batch segment jobs "
                f"need a User-Segmentation recipe: {[RECIPE_ARN_PREFIX + r for r in SEGMENT_RECIPES]}"
            )
        arn = self._new_batch_job(
            "batchSegmentJob",
            "batch-segment-job",
            params,
            version,
            default_results=DEFAULT_SEGMENT_USERS,
            max_results=MAX_SEGMENT_USERS,
            run=self._run_batch_segment,
            roleArn=params["roleArn"],
        )
        return {"batchSegmentJobArn": arn}

    def _run_batch_segment(self, arn: str) -> None:
        self._run_job(arn, self._segment, (data.ImportFailure, InvalidInput, ResourceNotFound))

    def _segment(self, job: dict) -> None:
        model = self._model(job["solutionVersionArn"])
        users = model.users.ids
        # Each user's scores for every item, once: a segment is then a column's top users.
        scores = np.vstack([model.preferences(str(u), None, np.zeros(0, dtype=np.int64))[0] for u in users])

        def answer(record: object, where: str) -> dict:
            position = (
                model.items.positions.get(str(record.get("itemId"))) if isinstance(record, dict) else None
            )
            if position is None:
                return {"input": record, "output": None, "error": "itemId is not in the model's items"}
            top = np.argsort(-scores[:, position], kind="stable")[: job["numResults"]]
            return {"input": record, "output": {"usersList": [str(users[i]) for i in top]}, "error": None}

        answer_json_lines(job, answer)

    def describe_batch_segment_job(self, params: dict) -> dict:
        return self._describe("batchSegmentJob", params["batchSegmentJobArn"])

    def list_batch_segment_jobs(self, params: dict) -> dict:
        return self._summaries("batchSegmentJob", params)
