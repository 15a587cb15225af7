"""Filters, event trackers and the events API: PutEvents, PutItems, PutUsers."""

from __future__ import annotations

import json
import time
import uuid

import pandas as pd
from personalize_contract import quotas
from personalize_contract.data_rules import DatasetSchema

from include.local_personalize.backend.core import (
    ACCOUNT_ID,
    GroupQuotaCheck,
    camel_to_field,
)
from include.local_personalize.errors import (
    InvalidInput,
    ResourceAlreadyExists,
    ResourceNotFound,
)


class EventsMixin:
    """Part of `PersonalizeBackend`; uses `BackendCore`'s state and helpers through `self`."""

    # filters -------------------------------------------------------------------------------------
    def _parse_filter(self, expression: str):
        from include.local_personalize import filters

        try:
            return filters.parse_filter_expression(expression)
        except ValueError as err:
            raise InvalidInput(f"Invalid filter expression: {err}") from err

    def _check_filter_fields(self, dataset_group_arn: str, referenced: dict[str, frozenset[str]]) -> None:
        """A filter may only name fields of the group's schemas (when that dataset exists yet)."""
        dataset_types = {
            "Items": "ITEMS",
            "CurrentItem": "ITEMS",
            "Interactions": "INTERACTIONS",
            "CurrentUser": "USERS",
        }
        for dataset_name, fields in referenced.items():
            dataset = self._group_dataset(dataset_group_arn, dataset_types.get(dataset_name, ""))
            if dataset is None:
                continue
            known = {f.upper() for f in self._dataset_schema(dataset).field_names} | {"ITEMID", "ITEM_ID"}
            unknown = sorted(f for f in fields if f.upper() not in known)
            if unknown:
                raise InvalidInput(
                    f"Filter names fields not in the {dataset['datasetType']} schema: {unknown}"
                )

    def create_filter(self, params: dict) -> dict:
        group = self._get("datasetGroup", params["datasetGroupArn"])
        expression = self._parse_filter(params["filterExpression"])
        self._check_filter_fields(group["datasetGroupArn"], expression.referenced_fields)
        arn = self.arn(f"filter/{params['name']}")
        body = {
            "name": params["name"],
            "datasetGroupArn": group["datasetGroupArn"],
            "filterExpression": params["filterExpression"],
            "status": "CREATE PENDING",
        }
        quota = GroupQuotaCheck(quotas.FILTERS, group["datasetGroupArn"], "filter")
        self._new("filter", arn, body, params.get("tags"), quota)
        self._activate_later(arn)
        return {"filterArn": arn}

    def describe_filter(self, params: dict) -> dict:
        return self._describe("filter", params["filterArn"])

    def list_filters(self, params: dict) -> dict:
        return self._summaries("filter", params)

    def delete_filter(self, params: dict) -> None:
        arn = params["filterArn"]
        self._get("filter", arn)
        self.store.delete(arn)
        self._filters.pop(arn, None)

    # event trackers ------------------------------------------------------------------------------
    def create_event_tracker(self, params: dict) -> dict:
        group = self._get("datasetGroup", params["datasetGroupArn"])
        with self.store.lock:
            existing = self.store.list("eventTracker", datasetGroupArn=group["datasetGroupArn"])
            if existing:
                raise ResourceAlreadyExists(
                    f"Dataset group {group['datasetGroupArn']} already has event tracker "
                    f"{existing[0]['eventTrackerArn']}; a dataset group has at most one"
                )
            if any(t["name"] == params["name"] for t in self.store.list("eventTracker")):
                raise ResourceAlreadyExists(f"An event tracker named {params['name']} already exists")
            tracking_id = str(uuid.uuid4())
            arn = self.arn(f"event-tracker/{uuid.uuid4().hex[:8]}")
            body = {
                "name": params["name"],
                "accountId": ACCOUNT_ID,
                "trackingId": tracking_id,
                "datasetGroupArn": group["datasetGroupArn"],
                "status": "CREATE PENDING",
            }
            self._new("eventTracker", arn, body, params.get("tags"))
        self._activate_later(arn)
        return {"eventTrackerArn": arn, "trackingId": tracking_id}

    def describe_event_tracker(self, params: dict) -> dict:
        return self._describe("eventTracker", params["eventTrackerArn"])

    def list_event_trackers(self, params: dict) -> dict:
        return self._summaries("eventTracker", params)

    def delete_event_tracker(self, params: dict) -> None:
        arn = params["eventTrackerArn"]
        self._get("eventTracker", arn)
        self.store.delete(arn)

    # events --------------------------------------------------------------------------------------
    def _remember_event(
        self,
        dataset_group_arn: str,
        user_id: str,
        item_id: str,
        event_type: str,
        sent_at: float,
        received_at: float,
        record_json: str,
    ) -> None:
        self._event_seq += 1
        self._events[(dataset_group_arn, user_id)].append(
            (self._event_seq, received_at, item_id, event_type, sent_at)
        )
        self._event_records[dataset_group_arn].append(json.loads(record_json))

    @staticmethod
    def _properties(raw: str | None, where: str) -> dict[str, str]:
        if not raw:
            return {}
        try:
            properties = json.loads(raw)
        except json.JSONDecodeError as err:
            raise InvalidInput(f"{where}.properties is not a JSON object: {err.msg}") from None
        if not isinstance(properties, dict):
            raise InvalidInput(f"{where}.properties is not a JSON object")
        return {
            camel_to_field(k): ("|".join(map(str, v)) if isinstance(v, list) else str(v))
            for k, v in properties.items()
        }

    def _check_against(self, schema: DatasetSchema, record: dict[str, str], where: str) -> None:
        unknown = sorted(set(record) - set(schema.field_names))
        if unknown:
            raise InvalidInput(f"{where}: fields not in the dataset's schema: {unknown}")
        violation = schema.check_record(record)
        if violation:
            raise InvalidInput(f"{where}: {violation.reason}")

    def put_events(self, params: dict) -> None:
        trackers = [t for t in self.store.list("eventTracker") if t["trackingId"] == params["trackingId"]]
        if not trackers:
            raise ResourceNotFound(f"No event tracker has trackingId {params['trackingId']}")
        group_arn = trackers[0]["datasetGroupArn"]
        dataset = self._group_dataset(group_arn, "INTERACTIONS")
        if dataset is None:
            raise InvalidInput(f"Dataset group {group_arn} has no INTERACTIONS dataset to record events in")
        schema = self._dataset_schema(dataset)
        user_id = params.get("userId") or params["sessionId"]
        records = []
        attributed = []
        for index, event in enumerate(params["eventList"]):
            where = f"eventList[{index}]"
            if not event.get("itemId"):
                raise InvalidInput(f"{where}.itemId is required to record an interaction")
            record = {"USER_ID": user_id, "ITEM_ID": event["itemId"], "TIMESTAMP": str(int(event["sentAt"]))}
            record |= self._properties(event.get("properties"), where)
            optional = {
                "EVENT_TYPE": event.get("eventType"),
                "EVENT_VALUE": event.get("eventValue"),
                "RECOMMENDATION_ID": event.get("recommendationId"),
                "IMPRESSION": "|".join(event["impression"]) if event.get("impression") else None,
                "EVENT_ID": event.get("eventId"),
            }
            record |= {k: str(v) for k, v in optional.items() if v is not None and k in schema.field_names}
            self._check_against(schema, record, where)
            records.append(record)
            values = self._properties(event.get("properties"), where)
            values |= {k: str(v) for k, v in optional.items() if v is not None}
            attributed.append(
                {
                    "eventType": event["eventType"],
                    "recommendationId": event.get("recommendationId"),
                    "eventAttributionSource": (event.get("metricAttribution") or {}).get(
                        "eventAttributionSource"
                    ),
                    "itemId": event["itemId"],
                    "values": values,
                    "sentAt": float(event["sentAt"]),
                }
            )
        received = time.time()
        with self.store.lock:
            rows = [
                (
                    group_arn,
                    user_id,
                    r["ITEM_ID"],
                    r.get("EVENT_TYPE", ""),
                    float(r["TIMESTAMP"]),
                    received,
                    json.dumps(r),
                )
                for r in records
            ]
            self.store.add_events(rows)
            for row in rows:
                self._remember_event(*row)
        self._attribute_events(group_arn, attributed)

    def _put_records(self, params: dict, dataset_type: str, key: str, id_key: str, id_field: str) -> None:
        dataset = self._get("dataset", params["datasetArn"])
        if dataset["datasetType"] != dataset_type:
            raise InvalidInput(
                f"Dataset {dataset['datasetArn']} is {dataset['datasetType']}, not {dataset_type}"
            )
        schema = self._dataset_schema(dataset)
        records = []
        for index, entry in enumerate(params[key]):
            where = f"{key}[{index}]"
            record = {id_field: entry[id_key]} | self._properties(entry.get("properties"), where)
            self._check_against(schema, record, where)
            records.append(record)
        group = self._get("datasetGroup", dataset["datasetGroupArn"])
        frame = pd.DataFrame(
            [[r.get(f, "") for f in schema.field_names] for r in records], columns=schema.field_names
        )
        with self._merge_lock:
            self.files.merge(group["name"], dataset_type, frame, "INCREMENTAL")
            self.files.append_put(group["name"], dataset_type, frame)
        self._group_data_changed(dataset["datasetGroupArn"])

    def put_items(self, params: dict) -> None:
        self._put_records(params, "ITEMS", "items", "itemId", "ITEM_ID")

    def put_users(self, params: dict) -> None:
        self._put_records(params, "USERS", "users", "userId", "USER_ID")
