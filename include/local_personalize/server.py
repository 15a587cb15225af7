"""The wire layer: AWS JSON 1.1 for the control plane, REST-JSON for runtime and events, on one URL.

Only parsing and serialising happen here; every rule lives in `models`. Requests may be SigV4-signed
with any credentials: the signature is not checked, as on moto.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from include.local_personalize import shapes
from include.local_personalize.errors import InvalidInput, PersonalizeError, UnknownOperation
from include.local_personalize.models import PersonalizeBackend

log = logging.getLogger(__name__)

TARGET_PREFIX = "AmazonPersonalize."
JSON_11 = "application/x-amz-json-1.1"
REST_JSON = "application/json"
REST_ROUTES = {
    "/recommendations": ("personalize-runtime", "GetRecommendations"),
    "/personalize-ranking": ("personalize-runtime", "GetPersonalizedRanking"),
    "/events": ("personalize-events", "PutEvents"),
    "/items": ("personalize-events", "PutItems"),
    "/users": ("personalize-events", "PutUsers"),
    "/action-recommendations": ("personalize-runtime", "GetActionRecommendations"),
    "/actions": ("personalize-events", "PutActions"),
    "/action-interactions": ("personalize-events", "PutActionInteractions"),
}


def method_name(operation: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", operation).lower()


# Personalize's shapes nest a few levels; anything deeper is not a request, and walking it would
# exhaust the stack (a 5,000-deep JSON array was a 500 before).
MAX_NESTING = 32


def _refuse_constant(name: str):
    raise InvalidInput(f"Request body is not JSON: {name} is not a JSON value")


def parse_body(raw: bytes) -> dict:
    """The request's JSON object; every way a body can be malformed is InvalidInput (a 4xx), never a 500."""
    if not raw.strip():
        return {}
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InvalidInput(f"Request body is not valid UTF-8 (byte {err.start})") from None
    try:
        params = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as err:
        raise InvalidInput(
            f"Request body is not JSON: {err.msg} (line {err.lineno}, column {err.colno})"
        ) from None
    except RecursionError:
        raise InvalidInput(f"Request body nests deeper than {MAX_NESTING} levels") from None
    except ValueError as err:  # e.g. an integer of more than 4,300 digits
        raise InvalidInput(f"Request body holds a value out of range: {err}") from None
    if not isinstance(params, dict):
        raise InvalidInput("Request body must be a JSON object")
    _check_values(params)
    return params


def _check_values(params: dict) -> None:
    """Iteratively (no recursion): nesting depth, and strings that are not Unicode text (lone surrogates
    such as "\ud800" parse, but cannot be stored or encoded)."""
    pending = [(params, 1)]
    while pending:
        value, depth = pending.pop()
        if depth > MAX_NESTING:
            raise InvalidInput(f"Request body nests deeper than {MAX_NESTING} levels")
        children = value.items() if isinstance(value, dict) else enumerate(value)
        for key, child in children:
            for text in (key, child):
                if isinstance(text, str):
                    try:
                        text.encode("utf-8")
                    except UnicodeEncodeError:
                        raise InvalidInput(
                            f"Request body holds a string that is not valid Unicode near {key!r}"
                        ) from None
            if isinstance(child, dict | list):
                pending.append((child, depth + 1))


def call(backend: PersonalizeBackend, service: str, operation: str, raw: bytes) -> dict | None:
    params = parse_body(raw)
    problems = shapes.input_problems(service, operation, params)
    if problems:
        raise InvalidInput(f"{len(problems)} validation error(s) detected: " + "; ".join(problems))
    handler = getattr(backend, method_name(operation), None)
    if handler is None:
        raise UnknownOperation(f"{operation} is not implemented by the local Personalize service")
    return handler(params)


def reply(body: str, media_type: str, status: int = 200, error_code: str | None = None) -> Response:
    headers = {"x-amzn-RequestId": str(uuid.uuid4())}
    if error_code:
        headers["x-amzn-errortype"] = error_code  # REST-JSON clients read the error code here first
    return Response(body, status_code=status, media_type=media_type, headers=headers)


def build_app(backend: PersonalizeBackend) -> Starlette:
    control_operations = set(shapes.service_model("personalize").operation_names)

    async def control_plane(request: Request) -> Response:
        target = request.headers.get("x-amz-target", "")
        operation = target.removeprefix(TARGET_PREFIX)
        try:
            if not target.startswith(TARGET_PREFIX) or operation not in control_operations:
                raise UnknownOperation(f"Unknown X-Amz-Target {target!r}")
            result = call(backend, "personalize", operation, await request.body())
        except PersonalizeError as err:
            return reply(json.dumps({"__type": err.code, "message": err.message}), JSON_11, 400)
        except Exception as err:
            log.exception("%s failed", operation)
            message = f"{type(err).__name__}: {err}"
            return reply(json.dumps({"__type": "InternalFailure", "message": message}), JSON_11, 500)
        return reply("" if result is None else json.dumps(result), JSON_11)

    def rest(service: str, operation: str):
        async def endpoint(request: Request) -> Response:
            try:
                result = call(backend, service, operation, await request.body())
            except PersonalizeError as err:
                body = json.dumps({"__type": err.code, "message": err.message})
                return reply(body, REST_JSON, err.rest_status, err.code)
            except Exception as err:
                log.exception("%s failed", operation)
                body = json.dumps({"message": f"{type(err).__name__}: {err}"})
                return reply(body, REST_JSON, 500, "InternalFailure")
            return reply("" if result is None else json.dumps(result), REST_JSON)

        return endpoint

    async def health(request: Request) -> Response:
        return reply(json.dumps({"status": "ok"}), REST_JSON)

    async def unknown_route(request: Request, exc: Exception) -> Response:
        """Paths and methods no operation has: the protocol's UnknownOperation error, in JSON."""
        operation = _modeled_rest_operation(request.method, request.url.path)
        message = (
            f"{operation} is not implemented by the local Personalize service"
            if operation
            else f"No operation at {request.method} {request.url.path}"
        )
        if request.headers.get("x-amz-target"):
            body = json.dumps({"__type": UnknownOperation.code, "message": message})
            return reply(body, JSON_11, 400)
        body = json.dumps({"__type": UnknownOperation.code, "message": message})
        return reply(body, REST_JSON, UnknownOperation.rest_status, UnknownOperation.code)

    routes = [Route("/", control_plane, methods=["POST"]), Route("/", health, methods=["GET"])]
    routes += [Route(path, rest(*target), methods=["POST"]) for path, target in REST_ROUTES.items()]
    return Starlette(routes=routes, exception_handlers={404: unknown_route, 405: unknown_route})


def _modeled_rest_operation(method: str, path: str) -> str | None:
    """The runtime/events operation botocore's models put at this method and path, if any."""
    for service in ("personalize-runtime", "personalize-events"):
        model = shapes.service_model(service)
        for name in model.operation_names:
            http = model.operation_model(name).http
            if http.get("method") == method and http.get("requestUri", "").split("?")[0] == path:
                return name
    return None


def bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def uvicorn_server(app: Starlette) -> uvicorn.Server:
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    return uvicorn.Server(config)


@dataclass
class LocalPersonalize:
    """A running server: `url` for boto3's endpoint_url, `stop()` to shut it down."""

    url: str
    backend: PersonalizeBackend
    _server: uvicorn.Server
    _thread: threading.Thread

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self.backend.close()


def start_in_thread(
    state_dir: str | Path,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    transition_delay: float = 0.0,
    region: str = "us-east-1",
) -> LocalPersonalize:
    """Serve on a free port (port=0) in a daemon thread; returns once the server accepts connections."""
    backend = PersonalizeBackend(Path(state_dir), region=region, transition_delay=transition_delay)
    sock = bind(host, port)
    server = uvicorn_server(build_app(backend))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="local-personalize", daemon=True
    )
    thread.start()
    while not server.started:
        if not thread.is_alive():
            backend.close()
            raise RuntimeError("the local Personalize server did not start")
        thread.join(0.01)
    bound_host, bound_port = sock.getsockname()[:2]
    return LocalPersonalize(f"http://{bound_host}:{bound_port}", backend, server, thread)
