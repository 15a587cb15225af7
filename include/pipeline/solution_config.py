"""The solutions of a pipeline: what each trains (recipe, options) and how each is served.

A dataset group serves several use cases ("recommended for you", "customers who liked X also liked
Y", re-ranking a list), each its own solution with its own gate and its own way of serving: a
campaign (real time, billed per hour of provisioned TPS), batch inference jobs (no campaign at all),
or both. The old single `solution:` + `campaign:` (+ `batch_inference:`, `gate:`) form is shorthand
for a one-entry `solutions:` list; `expand_shorthand` is the one place that says how.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from personalize_contract.names import NAME_MAX_LENGTH
from personalize_contract.recipes import (
    KNOWN_RECIPES,
    RECIPE_ARN_PREFIX,
    RECIPE_TYPES,
    UPDATE_RECIPES,
    serving_input,
)
from pydantic import Field, field_validator, model_validator

from include.pipeline.config_types import Cron, PersonalizeName, StrictModel, check_botocore_shape

# The recipe a baseline gate trains next to the challengers: what "learned nothing" looks like.
BASELINE_RECIPES = {"popularity-count": "aws-popularity-count"}


class SolutionConfig(StrictModel):
    name: PersonalizeName
    recipe: str = "aws-user-personalization"
    event_type: str | None = None
    perform_hpo: bool = False
    # AWS defaults this to true (a billed retrain every 7 days, around the gate); ours is off.
    perform_auto_training: bool = False
    # Passed to CreateSolution as is: Personalize's own keys, e.g. eventValueThreshold (a string).
    solution_config: dict[str, Any] = {}
    # Training mode of scheduled and asset-triggered runs; the manual form can choose either.
    training_mode: Literal["FULL", "UPDATE"] = "FULL"

    @field_validator("recipe")
    @classmethod
    def _recipe_name(cls, value: str) -> str:
        name = value.removeprefix(RECIPE_ARN_PREFIX)
        if not re.fullmatch(r"[a-z0-9][a-z0-9\-]*", name):
            raise ValueError(f"{value!r} is not a recipe name (e.g. aws-user-personalization) or recipe ARN")
        if name not in KNOWN_RECIPES:
            raise ValueError(f"unknown recipe {name!r}; Personalize's recipes are {sorted(KNOWN_RECIPES)}")
        return name

    @field_validator("solution_config")
    @classmethod
    def _solution_config_shape(cls, value: dict[str, Any]) -> dict[str, Any]:
        return check_botocore_shape(value, "SolutionConfig")

    @model_validator(mode="after")
    def _update_needs_a_recipe_that_supports_it(self) -> SolutionConfig:
        if self.training_mode == "UPDATE" and self.recipe not in UPDATE_RECIPES:
            raise ValueError(f"training_mode UPDATE: recipe {self.recipe} supports FULL only")
        return self

    @property
    def recipe_arn(self) -> str:
        return RECIPE_ARN_PREFIX + self.recipe

    @property
    def recipe_type(self) -> str | None:
        return RECIPE_TYPES.get(self.recipe)

    @property
    def supports_update(self) -> bool:
        return self.recipe in UPDATE_RECIPES

    def create_kwargs(self) -> dict[str, Any]:
        """One entry of PersonalizeEnsureResourcesOperator's `solutions`."""
        solution: dict[str, Any] = {
            "name": self.name,
            "recipe_arn": self.recipe_arn,
            "perform_hpo": self.perform_hpo,
            "perform_auto_training": self.perform_auto_training,
        }
        if self.event_type:
            solution["event_type"] = self.event_type
        if self.solution_config:
            solution["solution_config"] = self.solution_config
        return solution


class CampaignConfig(StrictModel):
    name: PersonalizeName
    min_provisioned_tps: int = Field(1, ge=1)
    # AWS can redeploy every new version automatically, around the gate; ours is off.
    sync_with_latest_solution_version: bool = False
    # Warn when the serving solution version is older than this: broken retraining goes unnoticed otherwise.
    max_serving_age_days: int = Field(14, ge=1)

    @property
    def campaign_config(self) -> dict[str, Any]:
        return {"syncWithLatestSolutionVersion": self.sync_with_latest_solution_version}


class BatchInferenceConfig(StrictModel):
    num_results: int = Field(25, ge=1, le=500)
    # A configured filter's name, applied to every recommendation of the job.
    filter: str | None = None
    # When this solution's batch job runs (include/pipeline/batch_schedule.py); default: the
    # pipeline's schedule.batch_inference.
    schedule: Cron | None = None


class ServedSolution(SolutionConfig):
    """A `solutions:` entry without its gate (config.py adds the gate, which lives there)."""

    campaign: CampaignConfig | None = None
    batch: BatchInferenceConfig | None = None

    @model_validator(mode="after")
    def _served_somehow(self) -> ServedSolution:
        if self.campaign is None and self.batch is None:
            raise ValueError(
                f"solution {self.name} is served neither by a campaign nor by batch: give it campaign:, "
                "batch: or both"
            )
        serving_input(self.recipe)  # the smoke test and the batch input must know how to ask it
        return self


def check_shorthand(data: Any) -> Any:
    """Either `solutions:` or the shorthand `solution:` + `campaign:` (+ `batch_inference:`), not both.

    Runs before validation. The shorthand's keys are validated where the user wrote them, so an error
    says `solution.recipe`; `shorthand_entry` then makes the one-entry list.
    """
    if not isinstance(data, dict) or data.get("domain") is not None:
        return data  # a domain config's recommenders serve: domain_config.check_domain_keys
    shorthand = [key for key in ("solution", "campaign", "batch_inference") if key in data]
    if "solutions" in data:
        if shorthand:
            raise ValueError(
                f"{', '.join(shorthand)}: the one-solution shorthand cannot be mixed with solutions:; move "
                "them into the solutions: entry (campaign: and batch: under it)"
            )
        return data
    if "solution" not in data:
        key = "solution" if "campaign" in data else "solutions"
        raise ValueError(
            f"{key}: required key is missing (a config without `domain` trains custom solutions: a list "
            "of solutions:, or the shorthand solution: + campaign:)"
        )
    if "campaign" not in data:
        raise ValueError(
            "campaign: required with the shorthand solution: (a batch-only solution is written as "
            "solutions: [{name: ..., recipe: ..., batch: {num_results: 25}}])"
        )
    return data


def shorthand_entry(solution: SolutionConfig, campaign: CampaignConfig, batch: BatchInferenceConfig) -> dict:
    """The `solutions:` entry the shorthand stands for: served by its campaign and by batch."""
    return {**solution.model_dump(), "campaign": campaign, "batch": batch}


def check_solutions(solutions: list, filters: list[str], baseline_name: str | None) -> None:
    """Cross-entry rules, each error naming the entry's key (`solutions.1.campaign.name: ...`)."""
    seen: dict[str, str] = {}
    for index, entry in enumerate(solutions):
        where = f"solutions.{index}"
        if entry.gate.evaluation == "replay" and serving_input(entry.recipe) != "USER":
            # Replay scores each model's recommendations for held-out users (replay.py): a recipe
            # asked by item, or with a list to rank, has no such list to score.
            raise ValueError(
                f"{where}.gate.evaluation: replay scores recommendations for users; recipe {entry.recipe} is "
                f"asked {'by item' if serving_input(entry.recipe) == 'ITEM' else 'to rank a list'}: give "
                "this solution its own gate with evaluation: offline (an entry without gate: takes the "
                "top-level gate:)"
            )
        for kind, name in (("name", entry.name), ("campaign.name", entry.campaign and entry.campaign.name)):
            if name is None:
                continue
            if (kind, name) in seen:
                raise ValueError(f"{where}.{kind}: {name!r} is already used by {seen[(kind, name)]}")
            seen[(kind, name)] = f"{where}.{kind}"
        if baseline_name is not None and entry.name == baseline_name:
            raise ValueError(f"{where}.name: {baseline_name!r} is the name of the baseline solution")
        if entry.batch is not None and entry.batch.filter is not None and entry.batch.filter not in filters:
            raise ValueError(f"{where}.batch.filter: {entry.batch.filter!r} is not one of filters {filters}")


def baseline_solution_name(dataset_group: str) -> str:
    return f"{dataset_group}-baseline-popularity"[:NAME_MAX_LENGTH]
