"""Recommenders of domain dataset groups: create, or update in place when the config changed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from personalize_contract.recipes import RECIPE_ARN_PREFIX

from personalize.hooks import PersonalizeResourceConflictError
from personalize.kinds import ACTIVE, RECOMMENDER, effective_status
from personalize.links import PersonalizeDatasetGroupLink
from personalize.operators.base import CREATE_TEMPLATE_FIELDS, PersonalizeBaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

# Stopped to save cost (StopRecommender): deploying leaves it stopped; StartRecommender brings it back.
STOPPED_STATUSES = frozenset({"INACTIVE", "STOP PENDING", "STOP IN_PROGRESS"})


class PersonalizeDeployRecommenderOperator(PersonalizeBaseOperator):
    """
    Ensure a recommender of a domain dataset group: create it, adopt it, or UpdateRecommender when
    a member of ``recommender_config`` differs from what it runs with; then wait until ACTIVE.

    :param recommender_name: Recommender name (unique in the account and region). (templated)
    :param dataset_group_arn: A dataset group created with a ``domain``. (templated)
    :param recipe: The use case's recipe name or ARN, e.g. ``aws-ecomm-recommended-for-you``; a
        recommender of that name with another recipe is a conflict (recipes cannot change). (templated)
    :param recommender_config: CreateRecommender ``recommenderConfig``. (templated)

    Returns the recommender ARN. A recommender stopped for cost (INACTIVE) is left stopped.
    """

    template_fields: Sequence[str] = aws_template_fields(
        "recommender_name", "dataset_group_arn", "recipe", "recommender_config", *CREATE_TEMPLATE_FIELDS
    )
    template_fields_renderers = {
        **PersonalizeBaseOperator.template_fields_renderers,
        "recommender_config": "json",
    }
    operator_extra_links = (PersonalizeDatasetGroupLink(),)
    default_waiter_delay = 60
    default_waiter_max_attempts = 240

    def __init__(
        self,
        *,
        recommender_name: str,
        dataset_group_arn: str,
        recipe: str,
        recommender_config: Mapping[str, Any] | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.recommender_name = recommender_name
        self.dataset_group_arn = dataset_group_arn
        self.recipe = recipe
        self.recommender_config = recommender_config

    def _find(self) -> str | None:
        return self.hook._find(
            "list_recommenders",
            "recommenders",
            "recommenderArn",
            self.recommender_name,
            datasetGroupArn=self.dataset_group_arn,
        )

    def step(self, context: Context) -> Any:
        hook = self.hook
        recipe_arn = self.recipe if self.recipe.startswith("arn:") else RECIPE_ARN_PREFIX + self.recipe
        wanted = dict(self.recommender_config or {})
        self._persist_link(context, PersonalizeDatasetGroupLink, dataset_group=self.dataset_group_arn)
        arn = self._find()
        if arn is None:

            def create() -> str:
                params: dict[str, Any] = {
                    "name": self.recommender_name,
                    "datasetGroupArn": self.dataset_group_arn,
                    "recipeArn": recipe_arn,
                }
                if wanted:
                    params["recommenderConfig"] = wanted
                self.log.info("Creating recommender %s (%s)", self.recommender_name, recipe_arn)
                return hook.conn.create_recommender(**self.create_params("CreateRecommender", params))[
                    "recommenderArn"
                ]

            arn, _ = hook.create_or_adopt("recommender", self.recommender_name, create, partial(self._find))
            return self._pending(RECOMMENDER, arn, result=arn) or arn
        description = hook.describe(RECOMMENDER, arn)
        if description["recipeArn"] != recipe_arn:
            raise PersonalizeResourceConflictError(
                f"Recommender {self.recommender_name} exists with recipe {description['recipeArn']}, not "
                f"{recipe_arn}: a recommender's recipe cannot change; give the new use case another name"
            )
        if description["status"] in STOPPED_STATUSES:
            self.log.warning(
                "Recommender %s is %s (stopped to save cost): left as it is", arn, description["status"]
            )
            return arn
        hook.raise_if_failed(RECOMMENDER, arn, description)
        if effective_status(RECOMMENDER, description) != ACTIVE:
            return self._pending(RECOMMENDER, arn, result=arn) or arn
        current = description.get("recommenderConfig") or {}
        changed = sorted(key for key, value in wanted.items() if current.get(key) != value)
        if changed:
            self.log.info("Updating recommender %s: %s changed", arn, ", ".join(changed))
            hook.conn.update_recommender(recommenderArn=arn, recommenderConfig=wanted)
        return self._pending(RECOMMENDER, arn, result=arn) or arn
