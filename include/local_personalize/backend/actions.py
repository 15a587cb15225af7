"""The action APIs (GetActionRecommendations, PutActions, PutActionInteractions) and their documented errors.

Actions serve the aws-next-best-action recipe from Actions and Action interactions datasets, which
the local service does not create (CreateDataset takes the item recommenders' dataset types). So
these calls always end in the error AWS gives for the missing resource: ResourceNotFound for an
unknown campaign, dataset or tracking ID or a dataset group without an Action interactions dataset;
InvalidInput for a campaign of another recipe or a dataset of another type.
"""

from __future__ import annotations

from include.local_personalize.errors import InvalidInput, ResourceNotFound

NEXT_BEST_ACTION = "arn:aws:personalize:::recipe/aws-next-best-action"


class ActionsMixin:
    """Part of `PersonalizeBackend`; uses `BackendCore`'s state and helpers through `self`."""

    def get_action_recommendations(self, params: dict) -> dict:
        if not params.get("campaignArn"):
            raise InvalidInput("campaignArn is required")
        campaign = self._serving(params["campaignArn"])
        recipe = self._get("solution", campaign["_solutionArn"])["recipeArn"]
        if recipe != NEXT_BEST_ACTION:
            raise InvalidInput(
                f"Campaign {params['campaignArn']} serves recipe {recipe}; action recommendations need a "
                f"campaign of {NEXT_BEST_ACTION}"
            )
        raise InvalidInput(f"{NEXT_BEST_ACTION} is not supported by the local service")  # pragma: no cover

    def put_actions(self, params: dict) -> None:
        dataset = self._get("dataset", params["datasetArn"])
        raise InvalidInput(f"Dataset {dataset['datasetArn']} is {dataset['datasetType']}, not ACTIONS")

    def put_action_interactions(self, params: dict) -> None:
        trackers = [t for t in self.store.list("eventTracker") if t["trackingId"] == params["trackingId"]]
        if not trackers:
            raise ResourceNotFound(f"No event tracker has trackingId {params['trackingId']}")
        raise ResourceNotFound(
            f"Dataset group {trackers[0]['datasetGroupArn']} has no Action interactions dataset to record "
            "action interactions in"
        )
