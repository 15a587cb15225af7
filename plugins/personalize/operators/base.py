"""The base every Personalize operator shares: resource names (run-scoped, attempt chains), the
converging create-or-adopt step, and the wait in the worker or the triggerer.

Every operator converges rather than fires: it looks for the resource it would create (by its
deterministic name), adopts it when found, creates it otherwise, and then waits for it in the
worker (``wait_for_completion``) or in the triggerer (``deferrable``). A retried or cleared task
therefore waits on the job it already started instead of starting (and paying for) another.

Jobs (dataset import jobs, solution versions, batch inference jobs) that end failed keep their
name in Personalize, so each job name is the first of a chain of attempt names (``name``,
``name-a2``, ``name-a3`` ...): a rerun skips the failed attempts and creates the next one, once.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.common.compat.sdk import AirflowException, conf
from personalize_contract.names import NAME_MAX_LENGTH

from personalize.create_kwargs import personalize_tags, with_create_kwargs
from personalize.hooks import PersonalizeHook, PersonalizeResourceFailedError
from personalize.kinds import (
    ACTIVE,
    FAILED_STATUSES,
    RESOURCE_KINDS,
    ResourceKind,
    effective_status,
    failure_reason,
)
from personalize.links import PersonalizeDatasetGroupLink, console_arn
from personalize.triggers import TRIGGER_FOR_KIND, validated_resource

if TYPE_CHECKING:
    from airflow.sdk import Context


_NAME_FORBIDDEN = re.compile(r"[^a-zA-Z0-9_-]+")
# Every operator's Create* extras, templated and shown as JSON in the UI.
CREATE_TEMPLATE_FIELDS = ("tags", "extra_create_kwargs")
IN_PROGRESS_STATUSES = frozenset({"CREATE PENDING", "CREATE IN_PROGRESS", "PENDING", "IN PROGRESS"})


def _attempt_suffix(attempt: int) -> str:
    if attempt < 1:
        raise ValueError(f"attempt numbers start at 1, got {attempt}")
    return "" if attempt == 1 else f"-a{attempt}"


def run_scoped_name(context: Context, prefix: str, attempt: int = 1) -> str:
    """
    A Personalize resource name unique to this task in this DAG run, and the same on every retry.

    Valid for Personalize (``^[a-zA-Z0-9][a-zA-Z0-9\\-_]*``, at most 63 characters): the readable
    prefix is cleaned and cut, and a digest of dag id, task id, run id and map index keeps it unique.
    ``attempt`` > 1 appends ``-a{attempt}``, cutting the readable prefix further, never the digest.
    """
    ti = context["ti"]
    identity = f"{ti.dag_id}\n{ti.task_id}\n{ti.run_id}\n{getattr(ti, 'map_index', -1)}"
    digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
    suffix = _attempt_suffix(attempt)
    room = NAME_MAX_LENGTH - len(digest) - 1 - len(suffix)
    readable = _NAME_FORBIDDEN.sub("-", prefix).strip("-_")[:room]
    return f"{readable or 'airflow'}-{digest}{suffix}"


def attempt_name(name: str, attempt: int) -> str:
    """
    The name of the ``attempt``-th job of the chain that starts with ``name``.

    Attempt 1 is ``name`` itself; attempt k is ``name-a{k}``. When that would pass Personalize's
    63 characters, ``name`` is cut and a digest of the whole of it is kept before the suffix, so
    two long names sharing a prefix still get distinct attempt names.
    """
    suffix = _attempt_suffix(attempt)
    if attempt == 1 or len(name) + len(suffix) <= NAME_MAX_LENGTH:
        return f"{name}{suffix}"
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    head = name[: NAME_MAX_LENGTH - len(suffix) - len(digest) - 1].rstrip("-_")
    return f"{head}-{digest}{suffix}"


# Polls in the worker before deferring come at least this often, so a short wait ends soon after the
# resource is ACTIVE whatever the waiter_delay.
GRACE_POLL_SECONDS = 2.0


def settles_before_deferring(
    hook: PersonalizeHook,
    kind: ResourceKind,
    arn: str,
    grace_seconds: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """
    Poll in the worker for up to ``grace_seconds``: True when the resource became ACTIVE.

    Raises, with Personalize's failureReason, when it failed meanwhile. A deferrable task calls
    this before deferring so that the many waits that end within seconds never defer: a trigger
    event that follows the deferral within seconds can fail the resumed try (apache/airflow#72716).
    """
    deadline = clock() + grace_seconds
    while clock() < deadline:
        sleep(min(GRACE_POLL_SECONDS, max(0.0, deadline - clock())))
        description = hook.describe(kind, arn)
        hook.raise_if_failed(kind, arn, description)
        if effective_status(kind, description) == ACTIVE:
            return True
    return False


@dataclass(frozen=True)
class Pending:
    """A resource the task must see ACTIVE before it is done (or before its next step can run)."""

    kind: ResourceKind
    arn: str
    # What the task returns when it is told not to wait for this resource.
    result: Any = None
    # The next step needs the resource ACTIVE, so the task waits even with wait_for_completion=False.
    blocking: bool = False


class PersonalizeBaseOperator(AwsBaseOperator[PersonalizeHook]):
    """
    Shared behaviour of the Personalize operators: idempotent steps, then wait or defer.

    Subclasses implement ``step(context, **state)``, which creates or adopts what is missing and
    returns either the task's result or a :class:`Pending` resource to wait for. After every wait
    the step runs again, so a multi-resource operator advances one dependency level at a time, in
    the worker or through the triggerer, and ``state`` (JSON-serialisable) survives the deferral.

    :param wait_for_completion: Whether to wait until the resource is ACTIVE. (default: True)
    :param waiter_delay: Seconds between status checks.
    :param waiter_max_attempts: Maximum number of status checks.
    :param deferrable: Wait in the triggerer, holding no worker slot; implies waiting. Requires
        aiobotocore. (default: ``[operators] default_deferrable``, else False)
    :param defer_after_seconds: Deferrable only: poll in the worker this long first and defer only
        if the resource is still in progress, so short waits never defer. (default: 0, defer at once)
    :param first_poll_delay: Deferrable only: seconds the trigger waits before its first status
        check (default: ``waiter_delay``); see :class:`~personalize.triggers.PersonalizeResourceActiveTrigger`.
    :param aws_conn_id: The Airflow connection used for AWS credentials (default ``aws_default``).
    :param region_name: AWS region_name. If not specified then the default boto3 behaviour is used.
    :param verify: Whether or not to verify SSL certificates.
    :param botocore_config: Configuration dictionary (key-values) for botocore client. Without a
        ``retries`` entry (here or in the connection) the hook uses botocore's standard retry mode,
        which retries Personalize's throttling errors with backoff.
    :param tags: ``{key: value}`` Personalize tags for every resource the task creates (Create*
        ``tags``); a resource the task adopts keeps its own tags. (templated)
    :param extra_create_kwargs: More members for the Create* call, e.g. ``{"domain": ...}``, passed
        as they are; one the operator already sets is an error. (templated, rendered as JSON)
    """

    aws_hook_class = PersonalizeHook
    template_fields_renderers: ClassVar[dict[str, str]] = {"tags": "json", "extra_create_kwargs": "json"}
    ui_color = "#ffd7a8"
    MAX_ROUNDS: ClassVar[int] = 100
    # Attempt names a job may use before a rerun gives up: each is a failed, billed job.
    MAX_ATTEMPTS: ClassVar[int] = 10
    default_waiter_delay: ClassVar[int] = 30
    default_waiter_max_attempts: ClassVar[int] = 120

    def __init__(
        self,
        *,
        wait_for_completion: bool = True,
        waiter_delay: int | None = None,
        waiter_max_attempts: int | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        tags: Mapping[str, str] | None = None,
        extra_create_kwargs: Mapping[str, Any] | None = None,
        defer_after_seconds: float = 0,
        first_poll_delay: float | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.tags = tags
        self.extra_create_kwargs = extra_create_kwargs
        self.defer_after_seconds = defer_after_seconds
        self.first_poll_delay = first_poll_delay
        self.wait_for_completion = wait_for_completion
        self.waiter_delay = self.default_waiter_delay if waiter_delay is None else waiter_delay
        self.waiter_max_attempts = (
            self.default_waiter_max_attempts if waiter_max_attempts is None else waiter_max_attempts
        )
        self.deferrable = deferrable

    def step(self, context: Context, **state: Any) -> Any:
        raise NotImplementedError

    def create_kwargs(self, extra: Mapping[str, Any] | None, *, taggable: bool = True) -> dict[str, Any]:
        """The task's tags (as Personalize takes them) plus ``extra``: what a Create* call gets on top."""
        merged = dict(extra or {})
        if self.tags and taggable:
            if "tags" in merged:
                raise ValueError("tags are set both by `tags` and in extra_create_kwargs: use `tags`")
            merged["tags"] = personalize_tags(self.tags)
        return merged

    def create_params(self, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """A single-resource Create* call's parameters plus the task's tags and extra_create_kwargs."""
        return with_create_kwargs(operation, params, self.create_kwargs(self.extra_create_kwargs))

    def execute(self, context: Context) -> Any:
        return self._converge(context, **self.initial_state())

    def initial_state(self) -> dict[str, Any]:
        return {}

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        resource = validated_resource(event)
        kind = RESOURCE_KINDS[resource["kind"]]
        if event["status"] != "success":
            raise self.hook.explain_wait_failure(kind, resource["arn"], event.get("message", "unknown error"))
        self.log.info("Personalize %s %s is ACTIVE", kind.label, resource["arn"])
        return self._converge(context, **resource["resume_state"])

    def _converge(self, context: Context, **state: Any) -> Any:
        for _ in range(self.MAX_ROUNDS):
            outcome = self.step(context, **state)
            if not isinstance(outcome, Pending):
                return outcome
            if not (outcome.blocking or self.wait_for_completion or self.deferrable):
                return outcome.result
            if self.deferrable:
                if settles_before_deferring(self.hook, outcome.kind, outcome.arn, self.defer_after_seconds):
                    continue
                self.log.info("Deferring until Personalize %s %s is ACTIVE", outcome.kind.label, outcome.arn)
                self.defer(
                    trigger=TRIGGER_FOR_KIND[outcome.kind](
                        arn=outcome.arn,
                        resume_state=state,
                        waiter_delay=self.waiter_delay,
                        waiter_max_attempts=self.waiter_max_attempts,
                        first_poll_delay=self.first_poll_delay,
                        aws_conn_id=self.aws_conn_id,
                        region_name=self.region_name,
                        verify=self.verify,
                        botocore_config=self.botocore_config,
                    ),
                    method_name="execute_complete",
                )
            self.log.info("Waiting for Personalize %s %s to become ACTIVE", outcome.kind.label, outcome.arn)
            self.hook.wait_until_active(
                outcome.kind,
                outcome.arn,
                waiter_delay=self.waiter_delay,
                waiter_max_attempts=self.waiter_max_attempts,
            )
        raise AirflowException(
            f"{self.task_id}: Personalize resources did not settle in {self.MAX_ROUNDS} waits"
        )

    def _pending(
        self, kind: ResourceKind, arn: str, *, result: Any = None, blocking: bool = False
    ) -> Pending | None:
        """None when the resource is ACTIVE; raise when it failed; else what to wait for."""
        description = self.hook.describe(kind, arn)
        self.hook.raise_if_failed(kind, arn, description)
        if effective_status(kind, description) == ACTIVE:
            return None
        return Pending(kind, arn, result=result, blocking=blocking)

    def _adopt_or_create_attempt(
        self,
        kind: ResourceKind,
        name_for_attempt: Callable[[int], str],
        find: Callable[[str], str | None],
        create: Callable[[str], str],
    ) -> str:
        """
        The ARN of the job to wait on: the first attempt of the chain that has not failed.

        Attempts 1..MAX_ATTEMPTS are looked up in order: a missing one is created (the only
        create), one in progress or ACTIVE is adopted, a failed one is skipped after logging its
        failureReason. A rerun after success therefore creates nothing, and a rerun after a
        failure creates exactly one new job.
        """
        hook = self.hook
        failed: list[str] = []
        last_reason = ""
        for attempt in range(1, self.MAX_ATTEMPTS + 1):
            name = name_for_attempt(attempt)
            arn = find(name)
            if arn is None:
                arn, created = hook.create_or_adopt(
                    kind.label, name, partial(create, name), partial(find, name)
                )
                if created:
                    return arn
            description = hook.describe(kind, arn)
            status = effective_status(kind, description)
            if status not in FAILED_STATUSES:
                self.log.info(
                    "Personalize %s %s (%s) already exists, %s; adopting it", kind.label, name, arn, status
                )
                return arn
            last_reason = failure_reason(kind, description)
            failed.append(name)
            self.log.warning(
                "Personalize %s %s (%s) is %s from an earlier try: %s. Personalize keeps the name, so "
                "trying attempt %d",
                kind.label,
                name,
                arn,
                status,
                last_reason,
                attempt + 1,
            )
        raise PersonalizeResourceFailedError(
            f"Every attempt of Personalize {kind.label} {failed[0]!r} failed ({', '.join(failed)}); "
            f"the last failureReason: {last_reason}. Fix the cause, then start a new DAG run."
        )

    def _converge_job(
        self,
        context: Context,
        kind: ResourceKind,
        find: Callable[[str], str | None],
        create: Callable[[str], str],
        dataset_group_arn: Callable[[], str],
    ) -> Any:
        """
        The step of a job named ``self.job_name`` in a dataset group (import, deletion, export).

        Adopts or creates the job of the name's attempt chain (see ``_adopt_or_create_attempt``),
        links the job's dataset group, and returns the job ARN once it is done, else what to wait for.
        """
        arn = self._adopt_or_create_attempt(
            kind, lambda attempt: attempt_name(self.job_name, attempt), find, create
        )
        self._persist_link(context, PersonalizeDatasetGroupLink, dataset_group=dataset_group_arn())
        return self._pending(kind, arn, result=arn) or arn

    def _persist_link(self, context: Context, link: type, **arns: str) -> None:
        link.persist(
            context=context,
            operator=self,
            region_name=self.hook.conn_region_name,
            aws_partition=self.hook.conn_partition,
            **{name: console_arn(arn) for name, arn in arns.items()},
        )
