"""botocore's service models as the single source of Personalize's wire rules.

The server checks every request against the operation's input shape (so names, lengths, patterns and
enums are refused exactly where AWS refuses them), and the conformance tests check every raw response
against the output shape. botocore's own validator covers required members, unknown keys, types and
minimums; it skips maximums, enums and patterns, which `shape_problems` adds from the shape metadata.
"""

from __future__ import annotations

import functools

import botocore.session
import regex
from botocore.model import OperationModel, ServiceModel, Shape
from botocore.validate import validate_parameters

SERVICES = ("personalize", "personalize-runtime", "personalize-events")


@functools.cache
def service_model(service: str) -> ServiceModel:
    return botocore.session.get_session().get_service_model(service)


@functools.cache
def operation_model(service: str, operation: str) -> OperationModel:
    return service_model(service).operation_model(operation)


@functools.cache
def _compiled(pattern: str) -> regex.Pattern:
    # The models carry Java patterns (\p{L}, \p{ASCII}); the `regex` module reads them as Java does,
    # and Java's String.matches() anchors the whole value.
    return regex.compile(pattern)


def shape_problems(value, shape: Shape, path: str = "", *, check_patterns: bool = True) -> list[str]:
    """Every way `value` breaks `shape`: botocore's checks plus maximums, enums and patterns."""
    problems = []
    try:
        validate_parameters(value, shape)
    except Exception as err:  # botocore raises ParamValidationError with every problem listed
        report = str(err).split("\n", 1)[-1]
        problems.extend(line.strip() for line in report.splitlines() if line.strip())
    problems.extend(_metadata_problems(value, shape, path or shape.name, check_patterns))
    return problems


def _metadata_problems(value, shape: Shape, path: str, check_patterns: bool) -> list[str]:
    problems: list[str] = []
    maximum = shape.metadata.get("max")
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        for key, member_value in value.items():
            if key in shape.members and member_value is not None:
                problems.extend(
                    _metadata_problems(member_value, shape.members[key], f"{path}.{key}", check_patterns)
                )
    elif kind == "list" and isinstance(value, list):
        if maximum is not None and len(value) > maximum:
            problems.append(f"{path}: {len(value)} entries, the maximum is {maximum}")
        for index, entry in enumerate(value):
            problems.extend(_metadata_problems(entry, shape.member, f"{path}[{index}]", check_patterns))
    elif kind == "map" and isinstance(value, dict):
        if maximum is not None and len(value) > maximum:
            problems.append(f"{path}: {len(value)} entries, the maximum is {maximum}")
        for key, entry in value.items():
            problems.extend(_metadata_problems(key, shape.key, f"{path} key {key!r}", check_patterns))
            problems.extend(_metadata_problems(entry, shape.value, f"{path}[{key!r}]", check_patterns))
    elif kind == "string" and isinstance(value, str):
        if maximum is not None and len(value) > maximum:
            problems.append(f"{path}: {len(value)} characters, the maximum is {maximum}")
        if shape.enum and value not in shape.enum:
            problems.append(f"{path}: {value!r} is not one of {list(shape.enum)}")
        pattern = shape.metadata.get("pattern")
        if check_patterns and pattern and not _compiled(pattern).fullmatch(value):
            problems.append(f"{path}: {value[:80]!r} does not match the pattern {pattern}")
    elif kind in ("integer", "long") and isinstance(value, int) and maximum is not None and value > maximum:
        problems.append(f"{path}: {value} is above the maximum {maximum}")
    return problems


def input_problems(service: str, operation: str, params: dict) -> list[str]:
    shape = operation_model(service, operation).input_shape
    if shape is None:
        return []
    return shape_problems(params, shape, "")


def output_problems(service: str, operation: str, body: dict | None) -> list[str]:
    """Problems of a raw JSON response body; an operation without output must answer empty."""
    shape = operation_model(service, operation).output_shape
    if shape is None:
        return [] if not body else [f"{operation} has no output shape but answered {body!r}"]
    # AWS's own responses break some output patterns (an import job's IAM roleArn against the
    # Personalize ARN pattern), so responses are held to types, lengths and enums only.
    return shape_problems(body or {}, shape, operation, check_patterns=False)
