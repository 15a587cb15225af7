"""Solution versions (training)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.utils.mixins import aws_template_fields

from personalize.kinds import SOLUTION_VERSION
from personalize.links import (
    PersonalizeSolutionVersionLink,
)
from personalize.operators.base import (
    CREATE_TEMPLATE_FIELDS,
    PersonalizeBaseOperator,
    attempt_name,
    run_scoped_name,
)

if TYPE_CHECKING:
    from airflow.sdk import Context


class PersonalizeCreateSolutionVersionOperator(PersonalizeBaseOperator):
    """
    Train a solution version, or adopt the one this task already started.

    :param solution_arn: ARN of the (ACTIVE) solution to train. (templated)
    :param name: Version name; by default one derived from DAG, task, run and map index, so a
        retry or a cleared task finds the version it started. After a failed or stopped version
        the retry trains the next attempt name (``-a2`` ...). (templated)
    :param training_mode: ``FULL`` retrains; ``UPDATE`` (user-personalization only, after an
        ACTIVE FULL version) brings in new items and recent interactions. (templated)

    Returns the solution version ARN.
    """

    template_fields: Sequence[str] = aws_template_fields(
        "solution_arn", "name", "training_mode", *CREATE_TEMPLATE_FIELDS
    )
    operator_extra_links = (PersonalizeSolutionVersionLink(),)
    default_waiter_delay = 60
    default_waiter_max_attempts = 720

    def __init__(self, *, solution_arn: str, name: str | None = None, training_mode: str = "FULL", **kwargs):
        super().__init__(**kwargs)
        self.solution_arn = solution_arn
        self.name = name
        self.training_mode = training_mode

    def step(self, context: Context) -> Any:
        if self.training_mode not in ("FULL", "UPDATE"):
            raise ValueError(f"training_mode must be FULL or UPDATE, got {self.training_mode!r}")
        hook = self.hook

        def name_for_attempt(attempt: int) -> str:
            if self.name:
                return attempt_name(self.name, attempt)
            return run_scoped_name(context, self.task_id, attempt)

        def create(name: str) -> str:
            self.log.info(
                "Training solution version %s of %s (%s)", name, self.solution_arn, self.training_mode
            )
            params = {"solutionArn": self.solution_arn, "name": name, "trainingMode": self.training_mode}
            params = self.create_params("CreateSolutionVersion", params)
            return hook.conn.create_solution_version(**params)["solutionVersionArn"]

        arn = self._adopt_or_create_attempt(
            SOLUTION_VERSION,
            name_for_attempt,
            lambda name: hook.find_solution_version(self.solution_arn, name),
            create,
        )
        group_arn = hook.describe(SOLUTION_VERSION, arn)["datasetGroupArn"]
        self._persist_link(
            context, PersonalizeSolutionVersionLink, dataset_group=group_arn, solution_version=arn
        )
        return self._pending(SOLUTION_VERSION, arn, result=arn) or arn
