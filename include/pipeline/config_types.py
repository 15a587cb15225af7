"""Building blocks every part of the pipeline config uses: the strict base model, Personalize's name
rule, and the check of an options dict against Personalize's own request shape (botocore)."""

from __future__ import annotations

from typing import Annotated, Any

from personalize_contract.names import NAME_MAX_LENGTH, NAME_PATTERN
from pydantic import BaseModel, ConfigDict, StringConstraints

PersonalizeName = Annotated[
    str, StringConstraints(pattern=NAME_PATTERN, min_length=1, max_length=NAME_MAX_LENGTH)
]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def check_botocore_shape(value: dict[str, Any], shape_name: str) -> dict[str, Any]:
    """Validate a dict against a Personalize request shape (member names, types) from botocore."""
    import botocore.session
    from botocore.validate import ParamValidator

    shape = botocore.session.get_session().get_service_model("personalize").shape_for(shape_name)
    report = ParamValidator().validate(value, shape)
    if report.has_errors():
        raise ValueError(report.generate_report().replace("\n", "; "))
    return value
