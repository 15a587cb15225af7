"""Fixtures for the provider layer: the Airflow AWS connection to the local servers, data, runners.

Operators run for real against the local Personalize service and moto's S3 server. The Airflow
context they get is a small recording task instance (the operators read its identity and push
console links to XCom through it); deferrable runs go through the trigger exactly as the
triggerer would: serialise, rebuild from the class path, run to the first event, resume.
"""

from __future__ import annotations

import asyncio
import contextlib
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
from personalize.hooks import PersonalizeHook
from personalize.operators import (
    PersonalizeCreateDatasetImportJobOperator,
    PersonalizeCreateSolutionVersionOperator,
    PersonalizeEnsureResourcesOperator,
)

from include.local_personalize.seed import INTERACTIONS_SCHEMA

REGION = "us-east-1"
ROLE_ARN = "arn:aws:iam::123456789012:role/personalize-test"
RECIPE_ARN = "arn:aws:personalize:::recipe/aws-user-personalization"


@pytest.fixture(scope="session")
def aws_default_connection(personalize_endpoint, s3_endpoint):
    """The Airflow connection every operator uses by default, pointing at the local servers."""
    previous = os.environ.get("AIRFLOW_CONN_AWS_DEFAULT")
    os.environ["AIRFLOW_CONN_AWS_DEFAULT"] = connection_uri(personalize_endpoint, s3_endpoint)
    yield "aws_default"
    if previous is None:
        os.environ.pop("AIRFLOW_CONN_AWS_DEFAULT", None)
    else:
        os.environ["AIRFLOW_CONN_AWS_DEFAULT"] = previous


def connection_uri(personalize_url: str, s3_url: str) -> str:
    from include.local_personalize.connection import aws_connection

    return json.dumps(aws_connection(personalize_url, s3_url, REGION))


@pytest.fixture(scope="session")
def slow_personalize(personalize_endpoint, s3_endpoint, tmp_path_factory):
    """A second local service whose resources take seconds per status step, so waits are observable.

    Reached through the Airflow connection ``aws_slow``. Depends on ``personalize_endpoint`` for
    the S3 endpoint variables that service sets for its jobs.
    """
    from include.local_personalize.server import start_in_thread

    server = start_in_thread(tmp_path_factory.mktemp("slow-personalize"), transition_delay=1.5)
    os.environ["AIRFLOW_CONN_AWS_SLOW"] = connection_uri(server.url, s3_endpoint)
    SLOW_SERVERS["aws_slow"] = server
    yield {"conn_id": "aws_slow", "url": server.url, "server": server}
    os.environ.pop("AIRFLOW_CONN_AWS_SLOW", None)
    SLOW_SERVERS.pop("aws_slow", None)
    server.stop()


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

    def get_first_reschedule_date(self, context: Any) -> None:
        return None  # the first try: reschedule-mode sensors time out from now


def make_context(operator, **ti_fields: Any) -> dict[str, Any]:
    return {"ti": RecordingTaskInstance(task_id=operator.task_id, **ti_fields)}


async def first_event(trigger):
    async for event in trigger.run():
        return event
    raise AssertionError(f"{trigger!r} ended without an event")


# Slow local services by Airflow connection id, for run_deferrable.
SLOW_SERVERS: dict[str, Any] = {}


@dataclass
class DeferredRun:
    result: Any
    # (trigger class path, serialised kwargs, event payload) per deferral, in order
    deferrals: list[tuple[str, dict, dict]]


def run_deferrable(operator, context, *, hold_worker: bool = True) -> DeferredRun:
    """Run a deferrable operator the way Airflow does with a triggerer, deferral after deferral.

    hold_worker=False lets the slow service progress while the operator runs (for a grace period
    that is meant to see the resource become ACTIVE in the worker)."""
    from airflow.providers.common.compat.sdk import TaskDeferred
    from airflow.sdk.module_loading import import_string

    method, kwargs, deferrals = operator.execute, {}, []
    # On the slow service, each step's resource stays pending while the operator runs, so the
    # operator really defers however slow this machine is (the trigger then runs unheld).
    slow = SLOW_SERVERS.get(getattr(operator, "aws_conn_id", None)) if hold_worker else None
    while True:
        try:
            with slow.backend.worker.held() if slow else contextlib.nullcontext():
                result = method(context, **kwargs)
            return DeferredRun(result, deferrals)
        except TaskDeferred as deferred:
            classpath, trigger_kwargs = deferred.trigger.serialize()
            # The triggerer rebuilds the trigger from its serialised form in another process.
            trigger = import_string(classpath)(**json.loads(json.dumps(trigger_kwargs)))
            event = asyncio.run(first_event(trigger))
            deferrals.append((classpath, trigger_kwargs, event.payload))
            method = getattr(operator, deferred.method_name)
            # Only the event comes back, as under dag.test(); a real triggerer also returns defer kwargs.
            kwargs = {"event": json.loads(json.dumps(event.payload))}


FAST = {"waiter_delay": 1, "waiter_max_attempts": 300}


def ensure_operator(prefix: str, **kwargs) -> PersonalizeEnsureResourcesOperator:
    spec = {
        "dataset_group_name": prefix,
        "datasets": {
            "INTERACTIONS": {
                "dataset_name": f"{prefix}-interactions",
                "schema_name": f"{prefix}-interactions",
                "schema": INTERACTIONS_SCHEMA,
            }
        },
        "solutions": [{"name": f"{prefix}-up", "recipe_arn": RECIPE_ARN}],
        "filters": [
            {
                "name": f"{prefix}-clicked",
                "filter_expression": 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click")',
            }
        ],
        "event_tracker_name": f"{prefix}-tracker",
    }
    spec.update(kwargs.pop("spec", {}))
    return PersonalizeEnsureResourcesOperator(task_id="ensure", **spec, **FAST, **kwargs)


def build_trained(conn_id: str, s3_endpoint: str) -> dict[str, Any]:
    """A dataset group with imported interactions and one ACTIVE solution version."""
    prefix = unique_name("trained")
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=prefix)
    s3.put_object(Bucket=prefix, Key="interactions/part-00000.csv", Body=interactions_csv().encode())
    ensure = ensure_operator(prefix, aws_conn_id=conn_id)
    resources = ensure.execute(make_context(ensure))
    importer = PersonalizeCreateDatasetImportJobOperator(
        task_id="import",
        job_name=f"{prefix}-full",
        dataset_arn=resources["dataset_arns"]["INTERACTIONS"],
        data_location=f"s3://{prefix}/interactions/part-00000.csv",
        role_arn=ROLE_ARN,
        import_mode="FULL",
        aws_conn_id=conn_id,
        **FAST,
    )
    importer.execute(make_context(importer))
    trainer = PersonalizeCreateSolutionVersionOperator(
        task_id="train", solution_arn=resources["solution_arns"][f"{prefix}-up"], aws_conn_id=conn_id, **FAST
    )
    version_arn = trainer.execute(make_context(trainer))
    return {
        "conn_id": conn_id,
        "hook": PersonalizeHook(aws_conn_id=conn_id),
        "prefix": prefix,
        "bucket": prefix,
        "resources": resources,
        "solution_arn": resources["solution_arns"][f"{prefix}-up"],
        "version_arn": version_arn,
    }


@pytest.fixture(scope="session")
def trained(aws_default_connection, s3_endpoint):
    """Trained resources on the fast service."""
    return build_trained(aws_default_connection, s3_endpoint)


@pytest.fixture(scope="session")
def slow_trained(slow_personalize, s3_endpoint):
    """Trained resources on the slow service, where every wait really waits."""
    return build_trained(slow_personalize["conn_id"], s3_endpoint)


@pytest.fixture
def deferrable() -> bool:
    """Overridden by tests parametrised over both waiting modes."""
    return False


@pytest.fixture
def world(request, deferrable):
    """Deferrable runs use the slow service, so the task really defers while the resource is pending."""
    return request.getfixturevalue("slow_trained" if deferrable else "trained")


@pytest.fixture(scope="session")
def slow_dataset(slow_personalize, s3_endpoint):
    """A dataset on the slow service, and a bucket holding one good and one bad interactions file."""
    prefix = unique_name("slow")
    operator = ensure_operator(
        prefix,
        spec={"solutions": [], "filters": [], "event_tracker_name": None},
        aws_conn_id=slow_personalize["conn_id"],
    )
    resources = operator.execute(make_context(operator))
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=prefix)
    good = interactions_csv()
    s3.put_object(Bucket=prefix, Key="good.csv", Body=good.encode())
    lines = good.splitlines()
    lines[3] = lines[3].replace(",click", ",click,extra")  # line 4: one field too many
    s3.put_object(Bucket=prefix, Key="bad.csv", Body=("\n".join(lines) + "\n").encode())
    return {
        "conn_id": slow_personalize["conn_id"],
        "server": slow_personalize["server"],
        "bucket": prefix,
        "dataset_arn": resources["dataset_arns"]["INTERACTIONS"],
        "hook": PersonalizeHook(aws_conn_id=slow_personalize["conn_id"]),
    }
