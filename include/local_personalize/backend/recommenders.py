"""Recommenders: domain dataset groups' use cases, trained by the local engine, served by GetRecommendations.

Each use case (personalize_contract.domains) maps to an engine recipe by what it computes; the use
case's event type selects the events it trains on (matched without regard to case: the guide writes
`View`, data often says `view`). Statuses follow botocore's Recommender documentation:
CREATE PENDING > CREATE IN_PROGRESS > ACTIVE | CREATE FAILED; STOP PENDING > STOP IN_PROGRESS >
INACTIVE > START PENDING > START IN_PROGRESS > ACTIVE. A model is trained at create (and at an
update that changes trainingDataConfig); Start reloads it, it never retrains.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pandas as pd
from personalize_contract import domains, quotas

from include.local_personalize.backend.core import INTERRUPTED, RUNNING, GroupQuotaCheck, log
from include.local_personalize.engine import api as engine
from include.local_personalize.errors import InvalidInput, ResourceInUse, ResourceNotFound

ENGINE_RECIPES = {
    "personalization": "aws-user-personalization",
    "related_items": "aws-similar-items",
    "popularity": "aws-popularity-count",
    "trending": "aws-trending-now",
}
TRANSITIONS = {"STOP": "INACTIVE", "START": "ACTIVE"}
IN_TRANSITION = (*RUNNING, "STOP PENDING", "STOP IN_PROGRESS", "START PENDING", "START IN_PROGRESS")


def use_case_data(data: engine.TrainingData, use_case: domains.UseCase) -> engine.TrainingData:
    """The interactions with the use case's event type spelt as the guide spells it; fails below 1000."""
    if use_case.event_type is None:
        return data
    interactions = data.interactions
    if "EVENT_TYPE" not in interactions.columns:
        raise InsufficientEvents(
            f"Use case {use_case.title} trains on {use_case.event_type} events; the Item interactions "
            "dataset has no EVENT_TYPE field"
        )
    matches = interactions["EVENT_TYPE"].astype(str).str.lower() == use_case.event_type.lower()
    if int(matches.sum()) < domains.MIN_USE_CASE_EVENTS:
        raise InsufficientEvents(
            f"Use case {use_case.title} needs at minimum {domains.MIN_USE_CASE_EVENTS} "
            f"{use_case.event_type} events; the dataset group has {int(matches.sum())}"
        )
    interactions = interactions.copy()
    interactions.loc[matches, "EVENT_TYPE"] = use_case.event_type
    return engine.TrainingData(interactions, data.items, data.users)


class InsufficientEvents(ValueError):
    pass


class RecommendersMixin:
    """Part of `PersonalizeBackend`; uses `BackendCore`'s state and helpers through `self`."""

    def _use_case(self, recipe_arn: str) -> domains.UseCase:
        found = domains.use_case(recipe_arn) if recipe_arn.startswith("arn:") else None
        if found is None:
            raise InvalidInput(
                f"recipeArn {recipe_arn} is not a domain use case; use one of "
                f"{[u.recipe_arn for u in domains.USE_CASES.values()]}"
            )
        return found

    def _engine_recipe(self, use_case: domains.UseCase) -> str:
        return ENGINE_RECIPES[use_case.kind]

    def create_recommender(self, params: dict) -> dict:
        group = self._get("datasetGroup", params["datasetGroupArn"])
        domain = group.get("domain")
        if domain not in domains.DOMAINS:
            raise InvalidInput(
                f"Dataset group {group['datasetGroupArn']} is not a Domain dataset group; recommenders "
                f"need one created with domain {' or '.join(domains.DOMAINS)} (use solutions and campaigns "
                "for a custom dataset group)"
            )
        use_case = self._use_case(params["recipeArn"])
        if use_case.domain != domain:
            raise InvalidInput(
                f"recipeArn {params['recipeArn']} is a {use_case.domain} use case; dataset group "
                f"{group['datasetGroupArn']} is {domain}: use one of "
                f"{[u.recipe_arn for u in domains.use_cases(domain)]}"
            )
        if group["status"] != "ACTIVE":
            raise ResourceInUse(f"Dataset group {group['datasetGroupArn']} is {group['status']}, not ACTIVE")
        arn = self.arn(f"recommender/{params['name']}")
        body = {
            "name": params["name"],
            "datasetGroupArn": group["datasetGroupArn"],
            "recipeArn": use_case.recipe_arn,
            "recommenderConfig": params.get("recommenderConfig") or {},
            "status": "CREATE PENDING",
        }
        quota = GroupQuotaCheck(quotas.RECOMMENDERS, group["datasetGroupArn"], "recommender")
        self._new("recommender", arn, body, params.get("tags"), quota)
        self.worker.submit(lambda: self._run_recommender_creation(arn), job=True)
        return {"recommenderArn": arn}

    def _recommender_model_dir(self, recommender: dict) -> Path:
        return self.models_dir / "recommenders" / recommender["name"]

    def _train_recommender(self, recommender: dict) -> dict[str, float]:
        use_case = self._use_case(recommender["recipeArn"])
        data = use_case_data(self.training_data(recommender["datasetGroupArn"]), use_case)
        request = engine.TrainingRequest(recipe=self._engine_recipe(use_case), event_type=use_case.event_type)
        model, metrics = engine.train(request, data)
        directory = self._recommender_model_dir(recommender)
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        model.save(directory)
        with self._models_lock:
            self._models[recommender["recommenderArn"]] = model
        return metrics

    def _run_recommender_creation(self, arn: str) -> None:
        def train(recommender: dict) -> dict:
            return {"modelMetrics": self._train_recommender(recommender), "_trainedAt": time.time()}

        self._run_job(
            arn, train, (InsufficientEvents, engine.InsufficientDataError, ValueError, ResourceNotFound)
        )

    def _recommender_model(self, arn: str) -> engine.TrainedModel:
        model = self._models.get(arn)
        if model is None:
            with self._models_lock:
                model = self._models.get(arn)
                if model is None:
                    model = engine.load_model(self._recommender_model_dir(self._get("recommender", arn)))
                    self._models[arn] = model
        return model

    def describe_recommender(self, params: dict) -> dict:
        return self._describe("recommender", params["recommenderArn"])

    def list_recommenders(self, params: dict) -> dict:
        return self._summaries("recommender", params)

    def update_recommender(self, params: dict) -> dict:
        arn = params["recommenderArn"]
        with self.store.lock:
            recommender = self._get("recommender", arn)
            if recommender["status"] != "ACTIVE":
                raise ResourceInUse(f"Recommender {arn} is {recommender['status']}; it must be ACTIVE")
            update = recommender.get("latestRecommenderUpdate")
            if update and update["status"] in RUNNING:
                raise ResourceInUse(f"Recommender {arn} already has an update in progress")
            now = time.time()
            update = {
                "recommenderConfig": params["recommenderConfig"],
                "status": "CREATE PENDING",
                "creationDateTime": now,
                "lastUpdatedDateTime": now,
            }
            self._set(arn, latestRecommenderUpdate=update)
        self.worker.submit(lambda: self._run_recommender_update(arn), job=True)
        return {"recommenderArn": arn}

    def _set_recommender_update(self, arn: str, **changes) -> dict | None:
        with self.store.lock:
            recommender = self.store.get(arn)
            if recommender is None:
                return None
            update = {**recommender["latestRecommenderUpdate"], **changes, "lastUpdatedDateTime": time.time()}
            return self._set(arn, latestRecommenderUpdate=update)

    def _run_recommender_update(self, arn: str) -> None:
        recommender = self._set_recommender_update(arn, status="CREATE IN_PROGRESS")
        if recommender is None:
            return
        self.worker.pause()
        config = recommender["latestRecommenderUpdate"]["recommenderConfig"]
        changes: dict = {"recommenderConfig": config}
        try:
            # AWS: a change of the columns used in training starts a full retraining.
            if config.get("trainingDataConfig") != recommender["recommenderConfig"].get("trainingDataConfig"):
                changes |= {"modelMetrics": self._train_recommender(recommender), "_trainedAt": time.time()}
        except Exception as err:
            self._set_recommender_update(arn, status="CREATE FAILED", failureReason=str(err))
            return
        with self.store.lock:
            if self._set_recommender_update(arn, status="ACTIVE") is not None:
                self._set(arn, **changes)

    def _change_state(self, arn: str, action: str, allowed_from: str) -> dict:
        with self.store.lock:
            recommender = self._get("recommender", arn)
            if recommender["status"] != allowed_from:
                raise ResourceInUse(
                    f"Recommender {arn} is {recommender['status']}; {action.title()}Recommender needs it {allowed_from}"
                )
            self._set(arn, status=f"{action} PENDING")

        def transition() -> None:
            self.worker.pause()
            if self._set(arn, status=f"{action} IN_PROGRESS") is None:
                return
            self.worker.pause()
            if action == "START":
                try:
                    self._recommender_model(arn)
                except Exception as err:  # the model files are gone: the recommender cannot serve
                    log.warning("recommender %s did not start: %s", arn, err)
            else:
                with self._models_lock:
                    self._models.pop(arn, None)
            self._set(arn, status=TRANSITIONS[action])

        self.worker.submit(transition)
        return {"recommenderArn": arn}

    def stop_recommender(self, params: dict) -> dict:
        return self._change_state(params["recommenderArn"], "STOP", "ACTIVE")

    def start_recommender(self, params: dict) -> dict:
        return self._change_state(params["recommenderArn"], "START", "INACTIVE")

    def delete_recommender(self, params: dict) -> None:
        arn = params["recommenderArn"]
        with self.store.lock:
            recommender = self._get("recommender", arn)
            if recommender["status"] in IN_TRANSITION:
                raise ResourceInUse(f"Recommender {arn} is {recommender['status']}; wait until it settles")
            self.store.delete(arn)
        with self._models_lock:
            self._models.pop(arn, None)
        shutil.rmtree(self._recommender_model_dir(recommender), ignore_errors=True)

    def _recover_recommender(self, body: dict) -> None:
        arn = body["recommenderArn"]
        status = body["status"]
        if status in RUNNING:
            self._set(arn, status="CREATE FAILED", failureReason=INTERRUPTED)
        elif status.startswith("STOP"):
            self._set(arn, status="INACTIVE")
        elif status.startswith("START"):
            self._set(arn, status="ACTIVE")
        update = body.get("latestRecommenderUpdate")
        if update and update.get("status") in RUNNING:
            self._set_recommender_update(arn, status="CREATE FAILED", failureReason=INTERRUPTED)

    # runtime -------------------------------------------------------------------------------------
    def _recommend_by_recommender(self, params: dict) -> tuple[str, list[tuple[str, float]]]:
        arn = params["recommenderArn"]
        recommender = self.store.peek(arn)
        if recommender is None or self.store.kind_of(arn) != "recommender":
            raise ResourceNotFound(f"Recommender {arn} does not exist")
        if recommender["status"] != "ACTIVE":
            raise InvalidInput(
                f"Recommender {arn} is {recommender['status']}, not ACTIVE"
                + ("; StartRecommender first" if recommender["status"] == "INACTIVE" else "")
            )
        use_case = self._use_case(recommender["recipeArn"])
        for member, need in (("userId", use_case.user_id), ("itemId", use_case.item_id)):
            if need == "required" and not params.get(member):
                raise InvalidInput(f"{member} is required by use case {use_case.title} ({use_case.recipe})")
        group_arn = recommender["datasetGroupArn"]
        user_id = params.get("userId")
        item_id = params.get("itemId") if use_case.item_id != "unused" else None
        if not item_id and use_case.kind == "related_items":
            raise InvalidInput(f"itemId is required by use case {use_case.title}")
        self._recommender_model(arn)
        items = self.recommend(
            arn,
            group_arn,
            user_id=user_id,
            item_id=item_id,
            num_results=params.get("numResults", 25),
            filter_arn=params.get("filterArn"),
            filter_values=params.get("filterValues") or {},
            trained_at=recommender.get("_trainedAt", recommender["creationDateTime"]),
            also_excluded=self._items_of_type(group_arn, user_id, use_case.filters_out),
            anonymous=use_case.user_id == "optional" and use_case.item_id == "unused",
        )
        return arn, items

    def _items_of_type(self, group_arn: str, user_id: str | None, event_type: str | None) -> frozenset[str]:
        """The items the user had events of `event_type` with (the use case's automatic filter)."""
        if not user_id or not event_type:
            return frozenset()
        history = self._group_frames_for(group_arn).history(
            user_id, self._events.get((group_arn, user_id), ())
        )
        if history.empty or "EVENT_TYPE" not in history.columns:
            return frozenset()
        of_type = history["EVENT_TYPE"].astype(str).str.lower() == event_type.lower()
        return frozenset(pd.unique(history.loc[of_type, "ITEM_ID"].astype(str)))
