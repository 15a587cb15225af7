"""Campaigns and the runtime: GetRecommendations, GetPersonalizedRanking."""

from __future__ import annotations

import time

from personalize_contract import quotas

from include.local_personalize import shapes
from include.local_personalize.backend.core import (
    DEFAULT_NUM_RESULTS,
    LATEST_VERSION,
    MAX_NUM_RESULTS,
    RUNNING,
    GroupFrames,
    GroupQuotaCheck,
    freeze_long_lived_objects,
    log,
    public,
)
from include.local_personalize.errors import (
    InvalidInput,
    ResourceInUse,
    ResourceNotFound,
)


class CampaignsMixin:
    """Part of `PersonalizeBackend`; uses `BackendCore`'s state and helpers through `self`."""

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
        group_arn = self._get("solution", version["solutionArn"])["datasetGroupArn"]

        def group_campaigns(store) -> int:
            solutions = {s["solutionArn"] for s in store.list("solution", datasetGroupArn=group_arn)}
            return sum(1 for c in store.list("campaign") if c["_solutionArn"] in solutions)

        quota = GroupQuotaCheck(quotas.ACTIVE_CAMPAIGNS, group_arn, "campaign", group_campaigns)
        self._new("campaign", arn, body, params.get("tags"), quota)
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
            # Recommenders keep their own models (backend/recommenders.py): only solution versions go.
            unserved = [v for v in self._models if v not in served and self.store.kind_of(v) != "recommender"]
            for version_arn in unserved:
                del self._models[version_arn]

    def delete_campaign(self, params: dict) -> None:
        arn = params["campaignArn"]
        self._get("campaign", arn)
        self.store.delete(arn)
        self._evict_unserved_models()

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
        also_excluded: frozenset[str] = frozenset(),
        anonymous: bool = False,  # a use case that needs neither userId nor itemId (Trending now)
    ) -> list[tuple[str, float]]:
        if not user_id and not item_id and not anonymous:
            raise InvalidInput("userId or itemId is required")
        if not 1 <= num_results <= MAX_NUM_RESULTS:
            raise InvalidInput(f"numResults {num_results} is outside 1..{MAX_NUM_RESULTS}")
        model = self._model(version_arn)
        if trained_at is None:
            trained_at = self._get("solutionVersion", version_arn)["creationDateTime"]
        allowed, excluded = self._filter_sets(filter_arn, dataset_group_arn, user_id, item_id, filter_values)
        excluded = excluded | also_excluded
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
        if params.get("recommenderArn") and params.get("campaignArn"):
            raise InvalidInput("Give campaignArn or recommenderArn, not both")
        if params.get("recommenderArn"):
            source, items = self._recommend_by_recommender(params)
        elif params.get("campaignArn"):
            source = params["campaignArn"]
            campaign = self._serving(source)
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
        else:
            raise InvalidInput("campaignArn or recommenderArn is required")
        return {
            "itemList": [{"itemId": i, "score": round(float(s), 7)} for i, s in items],
            "recommendationId": self._issue_recommendation_id(source),
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
            "recommendationId": self._issue_recommendation_id(params["campaignArn"]),
        }
