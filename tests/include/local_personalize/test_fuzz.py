"""The local service never answers 5xx to client input: fuzzed over every operation in botocore's
models, through raw HTTP (malformed bodies, headers, paths, methods) and through boto3 (random and
wrongly typed parameters, client-side validation off). Bounded and deterministic (fixed seed)."""

from __future__ import annotations

import http.client
import json
import random
from urllib.parse import urlparse

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ParamValidationError

from include.local_personalize import shapes
from include.local_personalize.server import method_name, start_in_thread
from tests.include.local_personalize.fuzz_inputs import BAD_BODIES, random_value

SEED = 13
BOTO3_CASES_PER_OPERATION = 6
REST_SERVICES = ("personalize-runtime", "personalize-events")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # Its own service: fuzzed calls that happen to be valid create resources nobody else should see.
    running = start_in_thread(tmp_path_factory.mktemp("fuzz-personalize"), transition_delay=0.01)
    yield running
    running.stop()


def send(url: str, method: str, path: str, body: bytes = b"", headers: dict | None = None):
    target = urlparse(url)
    connection = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def assert_client_error_in_protocol_shape(what: str, status: int, headers: dict, body: bytes, rest: bool):
    assert status < 500, f"{what}: {status} {body[:300]!r}"
    if status < 400:
        return
    lowered = {k.lower(): v for k, v in headers.items()}
    assert lowered.get("content-type", "").startswith("application/"), f"{what}: {lowered} {body[:200]!r}"
    error = json.loads(body)
    assert error.get("message"), f"{what}: {error}"
    if rest:
        assert lowered.get("x-amzn-errortype"), f"{what}: no x-amzn-errortype header ({lowered})"
    else:
        assert error.get("__type"), f"{what}: no __type ({error})"


def control_operations() -> list[str]:
    return list(shapes.service_model("personalize").operation_names)


def rest_operations() -> list[tuple[str, str, str, str]]:
    found = []
    for service in REST_SERVICES:
        model = shapes.service_model(service)
        for name in model.operation_names:
            http = model.operation_model(name).http
            found.append((service, name, http["method"], http["requestUri"]))
    return found


def test_malformed_bodies_get_a_4xx_json_error_on_every_operation(server):
    sent = 0
    for operation in control_operations():
        for what, body in BAD_BODIES:
            headers = {
                "X-Amz-Target": f"AmazonPersonalize.{operation}",
                "Content-Type": "application/x-amz-json-1.1",
            }
            status, response_headers, answer = send(server.url, "POST", "/", body, headers)
            assert_client_error_in_protocol_shape(
                f"{operation} / {what}", status, response_headers, answer, rest=False
            )
            sent += 1
    for service, operation, method, path in rest_operations():
        for what, body in BAD_BODIES:
            status, response_headers, answer = send(
                server.url, method, path, body, {"Content-Type": "application/json"}
            )
            assert_client_error_in_protocol_shape(
                f"{service} {operation} / {what}", status, response_headers, answer, rest=True
            )
            sent += 1
    assert sent == (len(control_operations()) + len(rest_operations())) * len(BAD_BODIES)


@pytest.mark.parametrize(
    ("what", "method", "path", "headers", "expected_code"),
    [
        ("no X-Amz-Target", "POST", "/", {}, "UnknownOperationException"),
        (
            "a target of another service",
            "POST",
            "/",
            {"X-Amz-Target": "DynamoDB_20120810.ListTables"},
            "UnknownOperationException",
        ),
        (
            "an operation Personalize does not have",
            "POST",
            "/",
            {"X-Amz-Target": "AmazonPersonalize.DropEverything"},
            "UnknownOperationException",
        ),
        (
            "a non-ASCII target",
            "POST",
            "/",
            {"X-Amz-Target": "AmazonPersonalize.Créer"},
            "UnknownOperationException",
        ),
        ("a path no operation has", "POST", "/nope", {}, "UnknownOperationException"),
        ("a GET of a POST operation", "GET", "/recommendations", {}, "UnknownOperationException"),
        (
            "a PUT on the control plane",
            "PUT",
            "/",
            {"X-Amz-Target": "AmazonPersonalize.ListDatasetGroups"},
            "UnknownOperationException",
        ),
        ("a DELETE of an events path", "DELETE", "/events", {}, "UnknownOperationException"),
    ],
)
def test_unknown_targets_paths_and_methods_answer_unknown_operation_in_json(
    server, what, method, path, headers, expected_code
):
    status, _, body = send(server.url, method, path, b"{}", headers)
    assert 400 <= status < 500, (what, status, body)
    assert json.loads(body)["__type"] == expected_code, (what, body)


@pytest.mark.parametrize(
    ("service", "operation", "params", "code", "status"),
    [
        ("personalize-runtime", "GetActionRecommendations", {}, "InvalidInputException", 400),
        (
            "personalize-runtime",
            "GetActionRecommendations",
            {"campaignArn": "arn:aws:personalize:us-east-1:123456789012:campaign/none"},
            "ResourceNotFoundException",
            404,
        ),
        (
            "personalize-events",
            "PutActions",
            {
                "datasetArn": "arn:aws:personalize:us-east-1:123456789012:dataset/none/ACTIONS",
                "actions": [{"actionId": "a1"}],
            },
            "ResourceNotFoundException",
            404,
        ),
        (
            "personalize-events",
            "PutActionInteractions",
            {
                "trackingId": "no-such-tracker",
                "actionInteractions": [
                    {"actionId": "a1", "sessionId": "s1", "timestamp": 1700000000, "eventType": "Taken"}
                ],
            },
            "ResourceNotFoundException",
            404,
        ),
    ],
)
def test_action_apis_answer_their_documented_errors_in_json(server, service, operation, params, code, status):
    # They used to answer a text/plain 404 that botocore could only report as an unknown error; the
    # codes are those botocore's models list for each operation.
    config = Config(retries={"mode": "standard", "max_attempts": 1})
    client = boto3.client(service, endpoint_url=server.url, region_name="us-east-1", config=config)
    with pytest.raises(ClientError) as raised:
        getattr(client, method_name(operation))(**params)
    assert raised.value.response["Error"]["Code"] == code
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == status


def test_boto3_with_random_and_wrongly_typed_parameters_never_gets_a_5xx(server):
    rng = random.Random(SEED)
    config = Config(parameter_validation=False, retries={"mode": "standard", "max_attempts": 1})
    answered = 0
    for service in shapes.SERVICES:
        client = boto3.client(service, endpoint_url=server.url, region_name="us-east-1", config=config)
        model = shapes.service_model(service)
        for operation in model.operation_names:
            method = getattr(
                client,
                client.meta.method_to_api_mapping
                and {v: k for k, v in client.meta.method_to_api_mapping.items()}[operation],
            )
            shape = model.operation_model(operation).input_shape
            for _ in range(BOTO3_CASES_PER_OPERATION):
                params = random_value(shape, rng) if shape is not None else {}
                if not isinstance(params, dict):
                    params = {}
                try:
                    method(**params)
                except ClientError as err:
                    status = err.response["ResponseMetadata"]["HTTPStatusCode"]
                    assert status < 500, f"{service} {operation} {params!r:.300}: {status} {err}"
                    assert err.response["Error"]["Code"], err.response
                    # every modeled operation is implemented: a fuzzed call is refused, never unknown
                    assert err.response["Error"]["Code"] != "UnknownOperationException", (operation, err)
                except (ParamValidationError, TypeError, ValueError, AttributeError, KeyError):
                    continue  # botocore could not even serialise it: nothing was sent
                answered += 1
    # Most cases reach the server (the rest botocore cannot serialise at all).
    total = (
        sum(len(shapes.service_model(s).operation_names) for s in shapes.SERVICES) * BOTO3_CASES_PER_OPERATION
    )
    assert answered > total * 0.8, (answered, total)
