"""Operators for the Amazon Personalize lifecycle, one per AWS action.

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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.providers.common.compat.sdk import AirflowException, conf
from personalize_contract.names import NAME_MAX_LENGTH

from personalize.create_kwargs import personalize_tags, with_create_kwargs
from personalize.hooks import (
    ACTIVE,
    BATCH_INFERENCE_JOB,
    CAMPAIGN,
    DATASET,
    DATASET_GROUP,
    DATASET_IMPORT_JOB,
    DATASET_TYPES,
    EVENT_TRACKER,
    FAILED_STATUSES,
    FILTER,
    RESOURCE_KINDS,
    SOLUTION,
    SOLUTION_VERSION,
    PersonalizeHook,
    PersonalizeResourceFailedError,
    ResourceKind,
    effective_status,
    failure_reason,
)
from personalize.links import (
    PersonalizeCampaignLink,
    PersonalizeDatasetGroupLink,
    PersonalizeSolutionVersionLink,
    console_arn,
)
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

    def _persist_link(self, context: Context, link: type, **arns: str) -> None:
        link.persist(
            context=context,
            operator=self,
            region_name=self.hook.conn_region_name,
            aws_partition=self.hook.conn_partition,
            **{name: console_arn(arn) for name, arn in arns.items()},
        )


class PersonalizeEnsureResourcesOperator(PersonalizeBaseOperator):
    """
    Create what is missing of a dataset group and its resources, adopt what exists, wait until ACTIVE.

    Order follows Personalize's dependencies: the dataset group; then schemas and datasets; then
    solutions, filters and the event tracker. A schema whose definition differs from the existing
    schema of the same name is an error naming the fields (schemas cannot change).

    :param dataset_group_name: Name of the dataset group. (templated)
    :param datasets: ``{dataset_type: {"dataset_name", "schema_name", "schema"}}``; ``schema`` is
        the Avro schema as a JSON string. (templated)
    :param solutions: ``[{"name", "recipe_arn", "event_type"?, "perform_hpo"?,
        "perform_auto_training"? (default False), "solution_config"?}]``. (templated)
    :param filters: ``[{"name", "filter_expression"}]``. (templated)
    :param event_tracker_name: Name of the event tracker to ensure, if any. (templated)
    :param role_arn: IAM role for the dataset group (needed with a KMS key). (templated)
    :param kms_key_arn: KMS key to encrypt the dataset group. (templated)
    :param extra_create_kwargs: Here keyed by resource: ``{"dataset_group" | "schema" | "dataset" |
        "solution" | "filter" | "event_tracker": {member: value}}``. (templated)
    :param wait_for_completion: The dataset group and datasets are always waited for, because
        what follows needs them ACTIVE; False skips waiting for solutions, filters and the tracker.

    Returns ``{"dataset_group_arn", "schema_arns", "dataset_arns", "solution_arns", "filter_arns",
    "event_tracker_arn", "tracking_id", "new_datasets"}``; ``new_datasets`` lists the dataset
    types this task created (across retries of the same try), e.g. to run a first FULL import.
    """

    template_fields: Sequence[str] = aws_template_fields(
        "dataset_group_name",
        "datasets",
        "solutions",
        "filters",
        "event_tracker_name",
        "role_arn",
        "kms_key_arn",
        *CREATE_TEMPLATE_FIELDS,
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {
        **PersonalizeBaseOperator.template_fields_renderers,
        "datasets": "json",
        "solutions": "json",
        "filters": "json",
    }
    operator_extra_links = (PersonalizeDatasetGroupLink(),)
    default_waiter_delay = 10
    default_waiter_max_attempts = 90

    DATASET_KEYS = frozenset({"dataset_name", "schema_name", "schema"})
    SOLUTION_KEYS = frozenset(
        {"name", "recipe_arn", "event_type", "perform_hpo", "perform_auto_training", "solution_config"}
    )
    FILTER_KEYS = frozenset({"name", "filter_expression"})
    RESOURCES = ("dataset_group", "schema", "dataset", "solution", "filter", "event_tracker")

    def __init__(
        self,
        *,
        dataset_group_name: str,
        datasets: Mapping[str, Mapping[str, str]],
        solutions: Sequence[Mapping[str, Any]] = (),
        filters: Sequence[Mapping[str, str]] = (),
        event_tracker_name: str | None = None,
        role_arn: str | None = None,
        kms_key_arn: str | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.dataset_group_name = dataset_group_name
        self.datasets = datasets
        self.solutions = list(solutions)
        self.filters = list(filters)
        self.event_tracker_name = event_tracker_name
        self.role_arn = role_arn
        self.kms_key_arn = kms_key_arn

    def initial_state(self) -> dict[str, Any]:
        self._validate_specs()
        return {"new_datasets": []}

    def _validate_specs(self) -> None:
        def check(label: str, spec: Any, allowed: frozenset[str], required: set[str]) -> None:
            if not isinstance(spec, Mapping):
                raise ValueError(f"{label} must be a mapping, got {type(spec).__name__}")
            if unknown := set(spec) - allowed:
                raise ValueError(f"{label} has unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}")
            if missing := required - set(spec):
                raise ValueError(f"{label} is missing {sorted(missing)}")

        if not self.datasets:
            raise ValueError("datasets is empty: a dataset group needs at least an INTERACTIONS dataset")
        for dataset_type, spec in self.datasets.items():
            if dataset_type not in DATASET_TYPES:
                raise ValueError(
                    f"datasets has unknown dataset type {dataset_type!r}; expected {DATASET_TYPES}"
                )
            check(f"datasets[{dataset_type!r}]", spec, self.DATASET_KEYS, set(self.DATASET_KEYS))
        for index, spec in enumerate(self.solutions):
            check(f"solutions[{index}]", spec, self.SOLUTION_KEYS, {"name", "recipe_arn"})
        for index, spec in enumerate(self.filters):
            check(f"filters[{index}]", spec, self.FILTER_KEYS, set(self.FILTER_KEYS))
        check("extra_create_kwargs", self.extra_create_kwargs or {}, frozenset(self.RESOURCES), set())

    def _extra(self, resource: str) -> dict[str, Any]:
        """Tags (every resource but schemas, which take none) and this resource's extra members."""
        extra = (self.extra_create_kwargs or {}).get(resource)
        return self.create_kwargs(extra, taggable=resource != "schema")

    def step(self, context: Context, new_datasets: list[str]) -> Any:
        hook = self.hook
        group_arn, _ = hook.get_or_create_dataset_group(
            self.dataset_group_name,
            role_arn=self.role_arn,
            kms_key_arn=self.kms_key_arn,
            create_kwargs=self._extra("dataset_group"),
        )
        self._persist_link(context, PersonalizeDatasetGroupLink, dataset_group=group_arn)
        if pending := self._pending(DATASET_GROUP, group_arn, blocking=True):
            return pending

        schema_arns, dataset_arns = {}, {}
        for dataset_type, spec in self.datasets.items():
            schema_arns[dataset_type], _ = hook.get_or_create_schema(
                spec["schema_name"], spec["schema"], create_kwargs=self._extra("schema")
            )
            dataset_arns[dataset_type], created = hook.get_or_create_dataset(
                dataset_group_arn=group_arn,
                dataset_type=dataset_type,
                name=spec["dataset_name"],
                schema_arn=schema_arns[dataset_type],
                create_kwargs=self._extra("dataset"),
            )
            if created and dataset_type not in new_datasets:
                new_datasets.append(dataset_type)
        for arn in dataset_arns.values():
            if pending := self._pending(DATASET, arn, blocking=True):
                return pending

        solution_arns = {}
        for spec in self.solutions:
            solution_arns[spec["name"]], _ = hook.get_or_create_solution(
                name=spec["name"],
                dataset_group_arn=group_arn,
                recipe_arn=spec["recipe_arn"],
                event_type=spec.get("event_type"),
                perform_hpo=spec.get("perform_hpo", False),
                perform_auto_training=spec.get("perform_auto_training", False),
                solution_config=spec.get("solution_config"),
                create_kwargs=self._extra("solution"),
            )
        filter_arns = {}
        for spec in self.filters:
            filter_arns[spec["name"]], _ = hook.get_or_create_filter(
                name=spec["name"],
                dataset_group_arn=group_arn,
                filter_expression=spec["filter_expression"],
                create_kwargs=self._extra("filter"),
            )
        event_tracker_arn = tracking_id = None
        if self.event_tracker_name:
            event_tracker_arn, tracking_id, _ = hook.get_or_create_event_tracker(
                name=self.event_tracker_name,
                dataset_group_arn=group_arn,
                create_kwargs=self._extra("event_tracker"),
            )
        result = {
            "dataset_group_arn": group_arn,
            "schema_arns": schema_arns,
            "dataset_arns": dataset_arns,
            "solution_arns": solution_arns,
            "filter_arns": filter_arns,
            "event_tracker_arn": event_tracker_arn,
            "tracking_id": tracking_id,
            "new_datasets": list(new_datasets),
        }
        last_level = (
            [(SOLUTION, arn) for arn in solution_arns.values()]
            + [(FILTER, arn) for arn in filter_arns.values()]
            + ([(EVENT_TRACKER, event_tracker_arn)] if event_tracker_arn else [])
        )
        for kind, arn in last_level:
            if pending := self._pending(kind, arn, result=result):
                return pending
        return result


class PersonalizeCreateDatasetImportJobOperator(PersonalizeBaseOperator):
    """
    Import a CSV file or prefix from S3 into a dataset, or adopt the import job of that name.

    :param job_name: Deterministic job name, e.g. from the DAG and data interval; a rerun with
        the same name waits on the existing job instead of importing twice, and after a failed
        job imports once more as ``{job_name}-a2`` (then ``-a3`` ...). (templated)
    :param dataset_arn: ARN of the dataset to import into. (templated)
    :param data_location: ``s3://bucket/key`` of a CSV file, or a prefix ending in ``/``. (templated)
    :param role_arn: IAM role Personalize assumes to read the bucket. (templated)
    :param import_mode: ``INCREMENTAL`` appends (and replaces records with the same IDs);
        ``FULL`` replaces the dataset's bulk data. (templated)

    Returns the dataset import job ARN.
    """

    template_fields: Sequence[str] = aws_template_fields(
        "job_name", "dataset_arn", "data_location", "role_arn", "import_mode", *CREATE_TEMPLATE_FIELDS
    )
    operator_extra_links = (PersonalizeDatasetGroupLink(),)
    default_waiter_delay = 60
    default_waiter_max_attempts = 240

    def __init__(
        self,
        *,
        job_name: str,
        dataset_arn: str,
        data_location: str,
        role_arn: str | None = None,
        import_mode: str = "INCREMENTAL",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.job_name = job_name
        self.dataset_arn = dataset_arn
        self.data_location = data_location
        self.role_arn = role_arn
        self.import_mode = import_mode

    def step(self, context: Context) -> Any:
        if self.import_mode not in ("FULL", "INCREMENTAL"):
            raise ValueError(f"import_mode must be FULL or INCREMENTAL, got {self.import_mode!r}")
        hook = self.hook

        def create(job_name: str) -> str:
            self.log.info(
                "Importing %s into %s (%s) as job %s",
                self.data_location,
                self.dataset_arn,
                self.import_mode,
                job_name,
            )
            params: dict[str, Any] = {
                "jobName": job_name,
                "datasetArn": self.dataset_arn,
                "dataSource": {"dataLocation": self.data_location},
                "importMode": self.import_mode,
            }
            if self.role_arn:
                params["roleArn"] = self.role_arn
            params = self.create_params("CreateDatasetImportJob", params)
            return hook.conn.create_dataset_import_job(**params)["datasetImportJobArn"]

        arn = self._adopt_or_create_attempt(
            DATASET_IMPORT_JOB,
            lambda attempt: attempt_name(self.job_name, attempt),
            lambda job_name: hook.find_dataset_import_job(self.dataset_arn, job_name),
            create,
        )
        group_arn = hook.describe(DATASET, self.dataset_arn)["datasetGroupArn"]
        self._persist_link(context, PersonalizeDatasetGroupLink, dataset_group=group_arn)
        return self._pending(DATASET_IMPORT_JOB, arn, result=arn) or arn


class PersonalizeCreateSolutionVersionOperator(PersonalizeBaseOperator):
    """
    Train a solution version, or adopt the one this task already started.

    :param solution_arn: ARN of the (ACTIVE) solution to train. (templated)
    :param name: Version name; by default one derived from DAG, task, run and map index, so a
        retry or a cleared task finds the version it started. After a failed or stopped version
        the retry trains the next attempt name (``-a2`` ...). (templated)
    :param training_mode: ``FULL`` retrains; ``UPDATE`` (user-personalization only, after an
        ACTIVE FULL version) brings in new items and recent interactions. (templated)

    Returns the solution version ARN.
    """

    template_fields: Sequence[str] = aws_template_fields(
        "solution_arn", "name", "training_mode", *CREATE_TEMPLATE_FIELDS
    )
    operator_extra_links = (PersonalizeSolutionVersionLink(),)
    default_waiter_delay = 60
    default_waiter_max_attempts = 720

    def __init__(self, *, solution_arn: str, name: str | None = None, training_mode: str = "FULL", **kwargs):
        super().__init__(**kwargs)
        self.solution_arn = solution_arn
        self.name = name
        self.training_mode = training_mode

    def step(self, context: Context) -> Any:
        if self.training_mode not in ("FULL", "UPDATE"):
            raise ValueError(f"training_mode must be FULL or UPDATE, got {self.training_mode!r}")
        hook = self.hook

        def name_for_attempt(attempt: int) -> str:
            if self.name:
                return attempt_name(self.name, attempt)
            return run_scoped_name(context, self.task_id, attempt)

        def create(name: str) -> str:
            self.log.info(
                "Training solution version %s of %s (%s)", name, self.solution_arn, self.training_mode
            )
            params = {"solutionArn": self.solution_arn, "name": name, "trainingMode": self.training_mode}
            params = self.create_params("CreateSolutionVersion", params)
            return hook.conn.create_solution_version(**params)["solutionVersionArn"]

        arn = self._adopt_or_create_attempt(
            SOLUTION_VERSION,
            name_for_attempt,
            lambda name: hook.find_solution_version(self.solution_arn, name),
            create,
        )
        group_arn = hook.describe(SOLUTION_VERSION, arn)["datasetGroupArn"]
        self._persist_link(
            context, PersonalizeSolutionVersionLink, dataset_group=group_arn, solution_version=arn
        )
        return self._pending(SOLUTION_VERSION, arn, result=arn) or arn


class PersonalizeDeployCampaignOperator(PersonalizeBaseOperator):
    """
    Make a campaign serve a solution version: create it when absent, else UpdateCampaign.

    Nothing is called when the campaign already serves that version with the same settings. An
    update or creation already in progress is waited for before anything new is asked.

    :param campaign_name: Name of the campaign. (templated)
    :param solution_version_arn: Solution version to serve. (templated)
    :param min_provisioned_tps: Minimum provisioned transactions per second (>= 1). (templated)
    :param campaign_config: ``campaignConfig`` for the API, e.g. ``{"itemExplorationWeight": ...}``.
        (templated)

    Returns the campaign ARN.
    """

    template_fields: Sequence[str] = aws_template_fields(
        "campaign_name",
        "solution_version_arn",
        "min_provisioned_tps",
        "campaign_config",
        *CREATE_TEMPLATE_FIELDS,
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {
        **PersonalizeBaseOperator.template_fields_renderers,
        "campaign_config": "json",
    }
    operator_extra_links = (PersonalizeCampaignLink(),)
    default_waiter_delay = 30
    default_waiter_max_attempts = 240

    def __init__(
        self,
        *,
        campaign_name: str,
        solution_version_arn: str,
        min_provisioned_tps: int = 1,
        campaign_config: Mapping[str, Any] | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.campaign_name = campaign_name
        self.solution_version_arn = solution_version_arn
        self.min_provisioned_tps = min_provisioned_tps
        self.campaign_config = campaign_config

    def _requested(self) -> dict[str, Any]:
        requested: dict[str, Any] = {
            "solutionVersionArn": self.solution_version_arn,
            "minProvisionedTPS": int(self.min_provisioned_tps),
        }
        if self.campaign_config:
            requested["campaignConfig"] = dict(self.campaign_config)
        return requested

    def step(self, context: Context) -> Any:
        hook = self.hook
        requested = self._requested()
        if requested["minProvisionedTPS"] < 1:
            raise ValueError(f"min_provisioned_tps must be at least 1, got {self.min_provisioned_tps}")
        campaign = hook.find_campaign(self.campaign_name)
        if campaign is None:
            self.log.info("Creating campaign %s serving %s", self.campaign_name, self.solution_version_arn)
            arn, _ = hook.create_or_adopt(
                "campaign",
                self.campaign_name,
                lambda: hook.conn.create_campaign(
                    **self.create_params("CreateCampaign", {"name": self.campaign_name, **requested})
                )["campaignArn"],
                lambda: (hook.find_campaign(self.campaign_name) or {}).get("campaignArn"),
            )
            self._link(context, arn)
            return Pending(CAMPAIGN, arn, result=arn)

        arn = campaign["campaignArn"]
        self._link(context, arn)
        update = campaign.get("latestCampaignUpdate") or {}
        if campaign["status"] in IN_PROGRESS_STATUSES or update.get("status") in IN_PROGRESS_STATUSES:
            self.log.info("Campaign %s is being created or updated; waiting before deciding", arn)
            return Pending(CAMPAIGN, arn, result=arn, blocking=True)
        if campaign["status"] == ACTIVE and self._serves_requested(campaign, requested):
            self.log.info("Campaign %s already serves %s; nothing to do", arn, self.solution_version_arn)
            return arn
        if campaign["status"] not in (ACTIVE, "CREATE FAILED"):
            raise PersonalizeResourceFailedError(
                f"Personalize campaign {arn} is {campaign['status']} and cannot be updated: "
                f"{failure_reason(CAMPAIGN, campaign)}"
            )
        self.log.info("Updating campaign %s to serve %s", arn, self.solution_version_arn)
        hook.conn.update_campaign(campaignArn=arn, **requested)
        return Pending(CAMPAIGN, arn, result=arn)

    @staticmethod
    def _serves_requested(campaign: Mapping[str, Any], requested: Mapping[str, Any]) -> bool:
        if "campaignConfig" in requested:
            current_config = campaign.get("campaignConfig") or {}
            if any(current_config.get(key) != value for key, value in requested["campaignConfig"].items()):
                return False
        return (
            campaign.get("solutionVersionArn") == requested["solutionVersionArn"]
            and campaign.get("minProvisionedTPS") == requested["minProvisionedTPS"]
        )

    def _link(self, context: Context, campaign_arn: str) -> None:
        group_arn = self.hook.describe(SOLUTION_VERSION, self.solution_version_arn)["datasetGroupArn"]
        self._persist_link(context, PersonalizeCampaignLink, dataset_group=group_arn, campaign=campaign_arn)


class PersonalizeCreateBatchInferenceJobOperator(PersonalizeBaseOperator):
    """
    Score users (or items) in bulk from S3 to S3, or adopt the batch inference job of that name.

    :param job_name: Deterministic job name; a rerun with the same name waits on the existing
        job, or after a failed one runs ``{job_name}-a2`` (then ``-a3`` ...). (templated)
    :param solution_version_arn: Solution version to score with. (templated)
    :param input_path: ``s3://`` JSON-lines input, one ``{"userId": ...}`` (or itemId) per line.
        (templated)
    :param output_path: ``s3://`` prefix the job writes its results under. (templated)
    :param role_arn: IAM role Personalize assumes to read and write the buckets; required by
        CreateBatchInferenceJob. (templated)
    :param num_results: Recommendations per input line (default 25). (templated)
    :param filter_arn: Filter to apply. (templated)

    Returns the batch inference job ARN.
    """

    template_fields: Sequence[str] = aws_template_fields(
        "job_name",
        "solution_version_arn",
        "input_path",
        "output_path",
        "role_arn",
        "num_results",
        "filter_arn",
        *CREATE_TEMPLATE_FIELDS,
    )
    operator_extra_links = (PersonalizeSolutionVersionLink(),)
    default_waiter_delay = 60
    default_waiter_max_attempts = 720

    def __init__(
        self,
        *,
        job_name: str,
        solution_version_arn: str,
        input_path: str,
        output_path: str,
        role_arn: str | None = None,
        num_results: int = 25,
        filter_arn: str | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.job_name = job_name
        self.solution_version_arn = solution_version_arn
        self.input_path = input_path
        self.output_path = output_path
        self.role_arn = role_arn
        self.num_results = num_results
        self.filter_arn = filter_arn

    def step(self, context: Context) -> Any:
        if not self.role_arn:
            raise ValueError(
                "role_arn is required: CreateBatchInferenceJob needs a role to read and write S3"
            )
        hook = self.hook

        def create(job_name: str) -> str:
            params: dict[str, Any] = {
                "jobName": job_name,
                "solutionVersionArn": self.solution_version_arn,
                "jobInput": {"s3DataSource": {"path": self.input_path}},
                "jobOutput": {"s3DataDestination": {"path": self.output_path}},
                "roleArn": self.role_arn,
                "numResults": int(self.num_results),
            }
            if self.filter_arn:
                params["filterArn"] = self.filter_arn
            params = self.create_params("CreateBatchInferenceJob", params)
            self.log.info("Starting batch inference job %s on %s", job_name, self.input_path)
            return hook.conn.create_batch_inference_job(**params)["batchInferenceJobArn"]

        arn = self._adopt_or_create_attempt(
            BATCH_INFERENCE_JOB,
            lambda attempt: attempt_name(self.job_name, attempt),
            lambda job_name: hook.find_batch_inference_job(self.solution_version_arn, job_name),
            create,
        )
        group_arn = hook.describe(SOLUTION_VERSION, self.solution_version_arn)["datasetGroupArn"]
        self._persist_link(
            context,
            PersonalizeSolutionVersionLink,
            dataset_group=group_arn,
            solution_version=self.solution_version_arn,
        )
        return self._pending(BATCH_INFERENCE_JOB, arn, result=arn) or arn


__all__ = [
    "PersonalizeBaseOperator",
    "PersonalizeCreateBatchInferenceJobOperator",
    "PersonalizeCreateDatasetImportJobOperator",
    "PersonalizeCreateSolutionVersionOperator",
    "PersonalizeDeployCampaignOperator",
    "PersonalizeEnsureResourcesOperator",
    "attempt_name",
    "run_scoped_name",
]
