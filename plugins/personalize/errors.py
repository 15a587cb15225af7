"""The provider layer's errors: a resource that failed, is missing, or exists with another definition."""

from __future__ import annotations

from airflow.providers.common.compat.sdk import AirflowException


class PersonalizeResourceFailedError(AirflowException):
    """A Personalize resource reached a status from which it never becomes ACTIVE."""


class PersonalizeResourceNotFoundError(AirflowException):
    """A Personalize resource the task needs does not exist."""


class PersonalizeResourceConflictError(AirflowException):
    """A resource of the requested name exists with a different, immutable definition."""
