"""What a Create* call gets beyond the members an operator models: tags, and the escape hatch."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def personalize_tags(tags: Mapping[str, str]) -> list[dict[str, str]]:
    """``{"team": "recs"}`` as Personalize's Create* calls take tags: ``[{"tagKey", "tagValue"}]``."""
    return [{"tagKey": str(key), "tagValue": str(value)} for key, value in tags.items()]


def with_create_kwargs(
    operation: str, params: Mapping[str, Any], create_kwargs: Mapping[str, Any] | None
) -> dict[str, Any]:
    """A Create* call's parameters plus the caller's extra members (the escape hatch for members
    the operators do not model, e.g. ``tags``, ``domain``, ``batchInferenceJobConfig``).

    An extra member that repeats one the call already sets is an error naming it: silently letting
    either win would hide a mistake in the DAG.
    """
    if not create_kwargs:
        return dict(params)
    if not isinstance(create_kwargs, Mapping):
        raise ValueError(
            f"{operation}: extra create kwargs must be a mapping, got {type(create_kwargs).__name__}"
        )
    if repeated := sorted(set(create_kwargs) & set(params)):
        raise ValueError(
            f"{operation}: extra create kwargs set {repeated}, which the operator already sets; "
            "use the operator's own parameters for them"
        )
    return {**params, **create_kwargs}
