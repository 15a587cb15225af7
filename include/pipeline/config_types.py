"""Building blocks every part of the pipeline config uses: the strict base model, Personalize's name
rule, a cron expression, and the check of an options dict against Personalize's own request shape
(botocore)."""

from __future__ import annotations

import functools
from typing import Annotated, Any

from personalize_contract.names import NAME_MAX_LENGTH, NAME_PATTERN
from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints

PersonalizeName = Annotated[
    str, StringConstraints(pattern=NAME_PATTERN, min_length=1, max_length=NAME_MAX_LENGTH)
]


def _check_cron(expression: str) -> str:
    from croniter import croniter

    if expression.strip().startswith("@"):
        # "@daily" and friends parse, but on Airflow 3 they make a zero-width data interval.
        raise ValueError(
            f"{expression!r}: write the cron fields out (e.g. '0 0 * * *'); presets give a zero-width "
            "data interval on Airflow 3"
        )
    if not croniter.is_valid(expression):
        raise ValueError(f"{expression!r} is not a valid cron expression (five fields, e.g. '0 2 * * *')")
    return expression


Cron = Annotated[str, AfterValidator(_check_cron)]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@functools.cache
def _personalize_service_model():
    """botocore's Personalize model, loaded once a process (every config paid ~40 ms for it before:
    most of a fleet's DAG parse time, bench_dag_parse). Read with a bare Loader, not a Session: a
    session registers its handlers and lists all ~440 services' folders first, ~15 ms of a parse."""
    from botocore.loaders import Loader
    from botocore.model import ServiceModel

    loader = Loader()
    version = loader.determine_latest_version("personalize", "service-2")
    return ServiceModel(loader.load_data(f"personalize/{version}/service-2"), service_name="personalize")


def check_botocore_shape(value: dict[str, Any], shape_name: str) -> dict[str, Any]:
    """Validate a dict against a Personalize request shape (member names, types) from botocore."""
    from botocore.validate import ParamValidator

    shape = _personalize_service_model().shape_for(shape_name)
    report = ParamValidator().validate(value, shape)
    if report.has_errors():
        raise ValueError(report.generate_report().replace("\n", "; "))
    return value
