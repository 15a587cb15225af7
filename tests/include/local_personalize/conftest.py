"""boto3 clients whose every response is checked against botocore's output shape, and test data.

The check runs on the raw JSON body before botocore parses it (its parser silently drops unknown
keys), so a response with an extra, missing, mistyped, too-long or out-of-enum member fails the call.
"""

from __future__ import annotations

import csv
import io
import json
import random
import time
from pathlib import Path

import boto3
import pytest
from personalize_contract.data_rules import Field

from include.local_personalize import seed, shapes

# Every operation whose response passed the shape check, for the coverage test.
VALIDATED_OPERATIONS: set[str] = set()
# Operations the local service answers only with their documented errors (no Actions datasets locally,
# backend/actions.py): test_conformance checks those errors instead of a response.
ERROR_ONLY_OPERATIONS = {
    "personalize-runtime:GetActionRecommendations",
    "personalize-events:PutActions",
    "personalize-events:PutActionInteractions",
}


def _check_response(operation_model, response_dict, **_) -> None:
    if response_dict["status_code"] >= 300:
        return
    service = operation_model.service_model.service_name
    raw = response_dict["body"]
    body = json.loads(raw) if raw.strip() else None
    problems = shapes.output_problems(service, operation_model.name, body)
    if problems:
        raise AssertionError(f"{operation_model.name} response breaks its output shape: {problems}\n{body}")
    VALIDATED_OPERATIONS.add(f"{service}:{operation_model.name}")


def checked_client(service: str, endpoint_url: str):
    client = boto3.client(service, endpoint_url=endpoint_url, region_name="us-east-1")
    client.meta.events.register("before-parse.*.*", _check_response)
    return client


@pytest.fixture(scope="session")
def personalize(personalize_endpoint):
    return checked_client("personalize", personalize_endpoint)


@pytest.fixture(scope="session")
def runtime(personalize_endpoint):
    return checked_client("personalize-runtime", personalize_endpoint)


@pytest.fixture(scope="session")
def events(personalize_endpoint):
    return checked_client("personalize-events", personalize_endpoint)


def wait_for_status(describe, key: str, *, done=("ACTIVE", "CREATE FAILED", "CREATE STOPPED"), timeout=120.0):
    """Poll a Describe call like a caller of AWS would; returns the resource once its status is final."""
    deadline = time.monotonic() + timeout
    seen = []
    while True:
        resource = describe()[key]
        if not seen or seen[-1] != resource["status"]:
            seen.append(resource["status"])
        if resource["status"] in done:
            resource["_seen"] = seen
            return resource
        if time.monotonic() > deadline:
            raise AssertionError(f"{key} still {resource['status']} after {timeout}s (saw {seen})")
        time.sleep(0.02)


INTERACTIONS_SCHEMA = seed.avro_schema(
    "INTERACTIONS", seed.USER_ID, seed.ITEM_ID, seed.TIMESTAMP, seed.EVENT_TYPE, seed.EVENT_VALUE
)
ITEMS_SCHEMA = seed.avro_schema("ITEMS", seed.ITEM_ID, seed.CATEGORY, seed.PRICE)
USERS_SCHEMA = seed.avro_schema("USERS", seed.USER_ID, Field("MEMBERSHIP", "string", categorical=True))
CATEGORIES = ("shoes", "socks", "hats")


def to_csv(header: list[str], rows: list[list]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode()


def interactions_csv(
    users: int = 40, per_user: int = 30, items: int = 60, seed: int = 7, item_prefix: str = "i"
) -> bytes:
    """Enough for Personalize's minimums (>= 1000 interactions, >= 25 users with >= 2 each), and small.

    Item popularity falls off with the item number, so popularity-based recipes have a clear order.
    """
    rng = random.Random(seed)
    weights = [1 / (rank + 1) for rank in range(items)]
    rows = []
    start = 1_700_000_000
    for user in range(users):
        for step in range(per_user):
            item = rng.choices(range(items), weights)[0]
            event_type = "purchase" if rng.random() < 0.2 else "click"
            rows.append([f"u{user}", f"{item_prefix}{item}", start + user * 1000 + step, event_type, ""])
    return to_csv(["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE"], rows)


def domain_interactions_csv(users: int = 40, per_user: int = 40, items: int = 60, seed: int = 11) -> bytes:
    """ECOMMERCE-style interactions: about 1,280 View and 320 Purchase events (the guide's spelling of
    the event types), so View use cases train and Purchase ones fall short of their 1,000 events."""
    rng = random.Random(seed)
    weights = [1 / (rank + 1) for rank in range(items)]
    rows = []
    for user in range(users):
        for step in range(per_user):
            item = rng.choices(range(items), weights)[0]
            event_type = "Purchase" if step % 5 == 4 else "View"
            rows.append([f"u{user}", f"i{item}", 1_700_000_000 + user * 1000 + step, event_type, ""])
    return to_csv(["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE"], rows)


def items_csv(items: int = 60) -> bytes:
    rows = [[f"i{i}", CATEGORIES[i % len(CATEGORIES)], f"{10 + i}.5"] for i in range(items)]
    return to_csv(["ITEM_ID", "CATEGORY", "PRICE"], rows)


def users_csv(users: int = 40) -> bytes:
    return to_csv(["USER_ID", "MEMBERSHIP"], [[f"u{u}", "gold" if u % 2 else "silver"] for u in range(users)])


def implemented_operations() -> set[str]:
    """Every operation of the three services that the local service implements."""
    from include.local_personalize.models import PersonalizeBackend
    from include.local_personalize.server import method_name

    return {
        f"{service}:{operation}"
        for service in shapes.SERVICES
        for operation in shapes.service_model(service).operation_names
        if hasattr(PersonalizeBackend, method_name(operation))
    }


@pytest.fixture(scope="session", autouse=True)
def every_operation_is_validated(request):
    """When this whole folder ran and passed, every implemented operation had a response checked."""
    yield
    if hasattr(request.config, "workerinput"):
        return  # a pytest-xdist worker runs only its share of the folder; the serial run checks
    folder = Path(__file__).parent
    own_modules = {p.stem for p in folder.glob("test_*.py") if not p.stem.startswith("test_filters")}
    ran = {
        Path(str(item.fspath)).stem
        for item in request.session.items
        if Path(str(item.fspath)).parent == folder
    }
    if ran >= own_modules and request.session.testsfailed == 0:
        missing = implemented_operations() - VALIDATED_OPERATIONS - ERROR_ONLY_OPERATIONS
        assert not missing, f"implemented but never called and checked through boto3: {sorted(missing)}"
