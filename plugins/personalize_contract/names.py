"""Names of Personalize resources ("CreateDatasetGroup" and every other Create* call's `name`)."""

from __future__ import annotations

import re

# Every Create* call's name (and jobName): 1 to 63 characters, a letter or digit first.
NAME_MAX_LENGTH = 63
NAME_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9\-_]*$"
_NAME = re.compile(NAME_PATTERN)


def is_valid_name(name: str) -> bool:
    return len(name) <= NAME_MAX_LENGTH and _NAME.match(name) is not None


def fit_name(name: str) -> str:
    """`name` cut to the length limit, without a trailing separator a cut can leave."""
    if len(name) <= NAME_MAX_LENGTH:
        return name
    return name[:NAME_MAX_LENGTH].rstrip("-_")
