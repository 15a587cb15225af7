"""Throttling is retried by botocore's standard retry mode, which the hooks use by default.

A tiny JSON 1.1 endpoint answers ``LimitExceededException`` (Personalize's throttling error) a set
number of times before it answers the call, and counts what it received.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from botocore.exceptions import ClientError
from personalize.hooks import PersonalizeHook
from personalize.kinds import DATASET_GROUP

from tests.plugins.conftest import connection_uri

GROUP_ARN = "arn:aws:personalize:us-east-1:123456789012:dataset-group/throttled"


class ThrottlingEndpoint:
    def __init__(self, throttle_first: int):
        self.throttle_first = throttle_first
        self.requests = 0
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                endpoint.requests += 1
                if endpoint.requests <= endpoint.throttle_first:
                    status, body = 400, {"__type": "LimitExceededException", "message": "Rate exceeded"}
                else:
                    status, body = 200, {"datasetGroup": {"datasetGroupArn": GROUP_ARN, "status": "ACTIVE"}}
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def throttled(monkeypatch):
    endpoints = []

    def start(throttle_first: int) -> ThrottlingEndpoint:
        endpoint = ThrottlingEndpoint(throttle_first)
        endpoints.append(endpoint)
        monkeypatch.setenv("AIRFLOW_CONN_AWS_THROTTLED", connection_uri(endpoint.url, endpoint.url))
        return endpoint

    yield start
    for endpoint in endpoints:
        endpoint.stop()


def test_throttled_calls_are_retried_until_they_succeed(throttled):
    endpoint = throttled(throttle_first=2)
    description = PersonalizeHook(aws_conn_id="aws_throttled").describe(DATASET_GROUP, GROUP_ARN)
    assert description["status"] == "ACTIVE"
    assert endpoint.requests == 3


def test_retries_are_bounded_and_configurable_per_task(throttled):
    endpoint = throttled(throttle_first=100)
    hook = PersonalizeHook(
        aws_conn_id="aws_throttled", config={"retries": {"mode": "standard", "max_attempts": 2}}
    )
    with pytest.raises(ClientError, match="LimitExceededException"):
        hook.describe(DATASET_GROUP, GROUP_ARN)
    # botocore's max_attempts counts retries: the first request and two more.
    assert endpoint.requests == 3
