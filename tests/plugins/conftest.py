"""Fixtures for the provider layer: the Airflow AWS connection to the local servers, data, runners.

Operators run for real against the local Personalize service and moto's S3 server. The Airflow
context they get is a small recording task instance (the operators read its identity and push
console links to XCom through it); deferrable runs go through the trigger exactly as the
triggerer would: serialise, rebuild from the class path, run to the first event, resume.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import random
import uuid
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest

REGION = "us-east-1"
ROLE_ARN = "arn:aws:iam::123456789012:role/personalize-test"
INTERACTIONS_SCHEMA = json.dumps(
    {
        "type": "record",
        "name": "Interactions",
        "namespace": "com.amazonaws.personalize.schema",
        "fields": [
            {"name": "USER_ID", "type": "string"},
            {"name": "ITEM_ID", "type": "string"},
            {"name": "TIMESTAMP", "type": "long"},
            {"name": "EVENT_TYPE", "type": "string"},
        ],
        "version": "1.0",
    }
)
RECIPE_ARN = "arn:aws:personalize:::recipe/aws-user-personalization"


@pytest.fixture(scope="session")
def aws_default_connection(personalize_endpoint, s3_endpoint):
    """The Airflow connection every operator uses by default, pointing at the local servers."""
    extra = {
        "region_name": REGION,
        "service_config": {
            "personalize": {"endpoint_url": personalize_endpoint},
            "personalize-runtime": {"endpoint_url": personalize_endpoint},
            "personalize-events": {"endpoint_url": personalize_endpoint},
            "s3": {"endpoint_url": s3_endpoint},
        },
    }
    previous = os.environ.get("AIRFLOW_CONN_AWS_DEFAULT")
    os.environ["AIRFLOW_CONN_AWS_DEFAULT"] = json.dumps({"conn_type": "aws", "extra": extra})
    yield "aws_default"
    if previous is None:
        os.environ.pop("AIRFLOW_CONN_AWS_DEFAULT", None)
    else:
        os.environ["AIRFLOW_CONN_AWS_DEFAULT"] = previous


@pytest.fixture(scope="session")
def personalize_client(personalize_endpoint):
    """A plain boto3 client for checking what the operators did."""
    return boto3.client("personalize", endpoint_url=personalize_endpoint, region_name=REGION)


def unique_name(prefix: str) -> str:
    """Resource names are account-wide; each test gets its own."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def interactions_csv(users: int = 50, events_per_user: int = 24, items: int = 40, seed: int = 7) -> str:
    """Enough interactions to train (>= 1000 records, >= 25 users with >= 2 each)."""
    rng = random.Random(seed)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE"])
    start = 1_767_225_600
    for user in range(users):
        for event in range(events_per_user):
            item = rng.randrange(items) if rng.random() < 0.5 else (user * 3 + event) % items
            writer.writerow([f"u{user}", f"i{item}", start + user * 1000 + event * 37, "click"])
    return out.getvalue()


@dataclass
class RecordingTaskInstance:
    """What operators read from ``context["ti"]``: identity, and XCom pushes (console links)."""

    task_id: str
    dag_id: str = "personalize_provider_test"
    run_id: str = "manual__2026-01-01T00:00:00+00:00"
    map_index: int = -1
    try_number: int = 1
    xcoms: dict[str, Any] = field(default_factory=dict)

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value


def make_context(operator, **ti_fields: Any) -> dict[str, Any]:
    return {"ti": RecordingTaskInstance(task_id=operator.task_id, **ti_fields)}


async def first_event(trigger):
    async for event in trigger.run():
        return event
    raise AssertionError(f"{trigger!r} ended without an event")


@dataclass
class DeferredRun:
    result: Any
    # (trigger class path, serialised kwargs, event payload) per deferral, in order
    deferrals: list[tuple[str, dict, dict]]


def run_deferrable(operator, context) -> DeferredRun:
    """Run a deferrable operator the way Airflow does with a triggerer, deferral after deferral."""
    from airflow.providers.common.compat.sdk import TaskDeferred
    from airflow.sdk.module_loading import import_string

    method, kwargs, deferrals = operator.execute, {}, []
    while True:
        try:
            return DeferredRun(method(context, **kwargs), deferrals)
        except TaskDeferred as deferred:
            classpath, trigger_kwargs = deferred.trigger.serialize()
            # The triggerer rebuilds the trigger from its serialised form in another process.
            trigger = import_string(classpath)(**json.loads(json.dumps(trigger_kwargs)))
            event = asyncio.run(first_event(trigger))
            deferrals.append((classpath, trigger_kwargs, event.payload))
            method = getattr(operator, deferred.method_name)
            kwargs = {"event": event.payload, **json.loads(json.dumps(deferred.kwargs or {}))}
