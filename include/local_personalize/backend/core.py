"""The backend's shared machinery: state, ARNs, tags, paging, status transitions, recovery.

Every resource family of `PersonalizeBackend` (include/local_personalize/models.py) is a mixin
in this package built on `BackendCore`; the constants and wire helpers they share live here.
"""

from __future__ import annotations

import gc
import json
import logging
import re
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from personalize_contract.quotas import GroupQuota

from include.local_personalize import datasets as data
from include.local_personalize import shapes
from include.local_personalize.engine import api as engine
from include.local_personalize.errors import (
    InvalidInput,
    LimitExceeded,
    ResourceAlreadyExists,
    ResourceNotFound,
    TooManyTags,
)
from include.local_personalize.store import StateStore
from include.local_personalize.worker import Worker


def freeze_long_lived_objects() -> None:
    """Move what exists now (loaded models, dataset frames, botocore models) out of the GC's view.

    These live as long as the server; without this a full collection walks them all and a request
    caught behind it waits 100+ ms.
    """
    gc.collect()
    gc.freeze()


log = logging.getLogger(__name__)

ACCOUNT_ID = "123456789012"
LATEST_VERSION = "/$LATEST"  # CreateCampaign / UpdateCampaign: the solution's newest ACTIVE version
MAX_TAGS = 50
MAX_PENDING_IMPORT_JOBS = 5
MAX_NUM_RESULTS = 500
DEFAULT_NUM_RESULTS = 25
RUNNING = ("CREATE PENDING", "CREATE IN_PROGRESS")
INTERRUPTED = (
    "The local Personalize service restarted while this job was in progress; the job did not finish. "
    "Create it again."
)


@dataclass(frozen=True)
class Kind:
    """How one resource kind appears on the wire."""

    key: str  # member name in Describe output, e.g. "datasetGroup"
    arn_key: str
    list_operation: str | None
    list_key: str | None
    list_parent: str | None = None  # List filter parameter, e.g. datasetGroupArn


@dataclass(frozen=True)
class GroupQuotaCheck:
    """A Create* that counts against a quota per dataset group (personalize_contract.quotas)."""

    quota: GroupQuota
    group_arn: str
    kind: str  # the store kind counted
    # The group's resources of that kind; default: those whose datasetGroupArn is the group.
    count: Callable[[Any], int] | None = None

    def check(self, store: Any) -> None:
        held = (
            self.count(store)
            if self.count is not None
            else len(store.list(self.kind, datasetGroupArn=self.group_arn))
        )
        if held >= self.quota.limit:
            raise LimitExceeded(
                f"Dataset group {self.group_arn} already has {held} {self.quota.resource}; the quota is "
                f"{self.quota.limit} per dataset group"
            )


KINDS = {
    "datasetGroup": Kind("datasetGroup", "datasetGroupArn", "ListDatasetGroups", "datasetGroups"),
    "schema": Kind("schema", "schemaArn", "ListSchemas", "schemas"),
    "dataset": Kind("dataset", "datasetArn", "ListDatasets", "datasets", "datasetGroupArn"),
    "datasetImportJob": Kind(
        "datasetImportJob", "datasetImportJobArn", "ListDatasetImportJobs", "datasetImportJobs", "datasetArn"
    ),
    "solution": Kind("solution", "solutionArn", "ListSolutions", "solutions", "datasetGroupArn"),
    "solutionVersion": Kind(
        "solutionVersion", "solutionVersionArn", "ListSolutionVersions", "solutionVersions", "solutionArn"
    ),
    "campaign": Kind("campaign", "campaignArn", "ListCampaigns", "campaigns", "solutionArn"),
    "filter": Kind("filter", "filterArn", "ListFilters", "Filters", "datasetGroupArn"),
    "eventTracker": Kind(
        "eventTracker", "eventTrackerArn", "ListEventTrackers", "eventTrackers", "datasetGroupArn"
    ),
    "batchInferenceJob": Kind(
        "batchInferenceJob",
        "batchInferenceJobArn",
        "ListBatchInferenceJobs",
        "batchInferenceJobs",
        "solutionVersionArn",
    ),
    "recommender": Kind(
        "recommender", "recommenderArn", "ListRecommenders", "recommenders", "datasetGroupArn"
    ),
    "dataDeletionJob": Kind(
        "dataDeletionJob", "dataDeletionJobArn", "ListDataDeletionJobs", "dataDeletionJobs", "datasetGroupArn"
    ),
    "datasetExportJob": Kind(
        "datasetExportJob", "datasetExportJobArn", "ListDatasetExportJobs", "datasetExportJobs", "datasetArn"
    ),
    "metricAttribution": Kind(
        "metricAttribution",
        "metricAttributionArn",
        "ListMetricAttributions",
        "metricAttributions",
        "datasetGroupArn",
    ),
    "batchSegmentJob": Kind(
        "batchSegmentJob",
        "batchSegmentJobArn",
        "ListBatchSegmentJobs",
        "batchSegmentJobs",
        "solutionVersionArn",
    ),
}


def public(body: dict) -> dict:
    """The resource as sent: private "_" keys and unset (None) members dropped at every level."""
    return {
        k: public(v) if isinstance(v, dict) else v
        for k, v in body.items()
        if not k.startswith("_") and v is not None
    }


def answer_json_lines(job: dict, answer: Callable[[object, str], dict]) -> None:
    """A batch job's input read and answered: every non-blank JSON line of each object under
    jobInput's path becomes `answer(record, where)` (`where` names object and line), one JSON line
    per answer in `<jobOutput path><object's file name>.out`. A line that is not JSON fails the job."""
    out_bucket, out_prefix = data.split_s3_uri(job["jobOutput"]["s3DataDestination"]["path"])
    if out_prefix and not out_prefix.endswith("/"):
        out_prefix += "/"
    client = data.s3_client()
    for bucket, key in data.list_import_objects(job["jobInput"]["s3DataSource"]["path"]):
        text = client.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")
        answers = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            where = f"s3://{bucket}/{key} line {number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise InvalidInput(f"{where}: not JSON ({err.msg})") from None
            answers.append(answer(record, where))
        body = "".join(json.dumps(a) + "\n" for a in answers)
        client.put_object(
            Bucket=out_bucket, Key=f"{out_prefix}{key.rsplit('/', 1)[-1]}.out", Body=body.encode()
        )


def camel_to_field(name: str) -> str:
    """PutItems/PutUsers/PutEvents property keys are camelCase of the schema's field names."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper()


class GroupFrames:
    """A dataset group's records indexed for filtering, as of event `seq`; rebuilt after imports."""

    def __init__(
        self, seq: int, interactions: pd.DataFrame, items: pd.DataFrame | None, users: pd.DataFrame | None
    ):
        self.seq = seq
        self.items = items
        # Sorted by user (stable, so each user's rows keep their order): a user's history is then a
        # contiguous slice, which pandas returns without copying. It is read on every filtered request.
        self.interactions = interactions.sort_values("USER_ID", kind="stable", ignore_index=True)
        users_column = self.interactions["USER_ID"].to_numpy()
        starts = (
            np.flatnonzero(np.r_[True, users_column[1:] != users_column[:-1]]) if len(users_column) else []
        )
        ends = [*starts[1:], len(users_column)] if len(users_column) else []
        self._slices = {users_column[start]: (start, end) for start, end in zip(starts, ends, strict=True)}
        self._users = users.set_index("USER_ID", drop=False) if users is not None else None
        self._items_by_id = items.set_index("ITEM_ID", drop=False) if items is not None else None

    def history(self, user_id: str | None, events) -> pd.DataFrame:
        """The user's interactions, plus events recorded after this snapshot was taken."""
        start, end = self._slices.get(user_id, (0, 0)) if user_id else (0, 0)
        history = self.interactions.iloc[start:end]
        newer = [e for e in events if e[0] > self.seq]
        if newer:
            extra = pd.DataFrame(
                {
                    "USER_ID": [user_id] * len(newer),
                    "ITEM_ID": [e[2] for e in newer],
                    "TIMESTAMP": [int(e[4]) for e in newer],
                    "EVENT_TYPE": [e[3] for e in newer],
                }
            )
            history = pd.concat([history, extra], ignore_index=True)
        return history

    @staticmethod
    def _row(frame: pd.DataFrame | None, key: str | None) -> dict | None:
        if frame is None or not key or key not in frame.index:
            return None
        row = frame.loc[key]
        if isinstance(row, pd.DataFrame):  # an ID imported twice: the last record wins
            row = row.iloc[-1]
        return {k: v for k, v in row.items() if v is not None}

    def user(self, user_id: str | None) -> dict | None:
        return self._row(self._users, user_id)

    def item(self, item_id: str | None) -> dict | None:
        return self._row(self._items_by_id, item_id)


class BackendCore:
    def __init__(self, state_dir: Path, *, region: str = "us-east-1", transition_delay: float = 0.0):
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.region = region
        self.store = StateStore(self.state_dir / "state.sqlite")
        self.files = data.DatasetFiles(self.state_dir / "data")
        # A merge reads a dataset's records and writes them back: an import job and PutItems/PutUsers
        # merging at once would lose one side's records. Not the store lock: an import must not hold
        # up the runtime path for the length of a file rewrite.
        self._merge_lock = threading.Lock()
        self.models_dir = self.state_dir / "models"
        self.worker = Worker(transition_delay)
        self._models: dict[str, engine.TrainedModel] = {}
        self._models_lock = threading.Lock()
        # PutEvents, per (dataset group, user): [(seq, received_at, item_id, event_type, sent_at)]; and
        # per dataset group the full records, which join the bulk interactions at training time (a
        # FULL import replaces bulk data only, as on AWS).
        self._events: dict[tuple[str, str], list[tuple[int, float, str, str, float]]] = defaultdict(list)
        self._event_records: dict[str, list[dict[str, str]]] = defaultdict(list)
        self._event_seq = 0
        self._group_frames: dict[str, GroupFrames] = {}
        # Bumped (under the store lock) whenever a group's data changes, so frames built from older
        # data by a request that was overtaken are not cached.
        self._group_data_generation: dict[str, int] = defaultdict(int)
        self._filters: dict[str, object] = {}
        # recommendationId -> the campaign or recommender that served it, for metric attributions
        # (backend/metric_attributions.py); bounded, oldest forgotten first, written to the store in
        # the background (the runtime path never waits on disk).
        self._recommendation_sources: dict[str, str] = dict(self.store.recommendations())
        self._unsaved_recommendations: list[tuple[str, str]] = []
        self._recommendations_lock = threading.Lock()
        self._recommendations_saved_at = time.monotonic()
        self._recommendations_saving = False
        for row in self.store.all_events():
            self._remember_event(*row)
        self._recover()

    def close(self) -> None:
        self.worker.stop()
        flush = getattr(self, "_save_recommendations", None)
        if flush is not None:
            flush()
        self.store.close()

    # helpers -------------------------------------------------------------------------------------
    def arn(self, resource: str) -> str:
        return f"arn:aws:personalize:{self.region}:{ACCOUNT_ID}:{resource}"

    def _get(self, kind: str, arn: str) -> dict:
        body = self.store.get(arn, kind)
        if body is None:
            label = re.sub(r"(?<!^)(?=[A-Z])", " ", kind).lower()
            raise ResourceNotFound(f"Could not find {label} with arn {arn}")
        return body

    def _new(
        self, kind: str, arn: str, body: dict, tags: list | None = None, quota: GroupQuotaCheck | None = None
    ) -> dict:
        """Insert a new resource; `quota`: the dataset group quota it counts against, checked under
        the same lock (an existing name still answers ResourceAlreadyExists, so creates stay adoptable)."""
        self._check_tags(tags or [])
        now = time.time()
        body = {**body, KINDS[kind].arn_key: arn, "creationDateTime": now, "lastUpdatedDateTime": now}
        with self.store.lock:  # check and insert at once: two concurrent creates make one resource
            if self.store.get(arn) is not None:
                raise ResourceAlreadyExists(f"{KINDS[kind].key} {arn} already exists")
            if quota is not None:
                quota.check(self.store)
            self.store.put(kind, arn, body)
            if tags:
                self.store.set_tags(arn, {t["tagKey"]: t["tagValue"] for t in tags})
        return body

    def _set(self, arn: str, **changes) -> dict | None:
        """Update a resource unless it was deleted meanwhile (then None)."""
        with self.store.lock:
            if self.store.get(arn) is None:
                return None
            return self.store.update(arn, lastUpdatedDateTime=time.time(), **changes)

    def _run_job(
        self,
        arn: str,
        work: Callable[[dict], dict | None],
        expected: tuple[type[Exception], ...],
        *,
        running: str = "CREATE IN_PROGRESS",
        done: str = "ACTIVE",
        failed: str = "CREATE FAILED",
    ) -> None:
        """A job's run in the background: `running`, a pause, then `work(job)`, then `done` with the
        members work returns. An `expected` error (the job's input or a resource it names) ends it
        `failed` with the error's message as failureReason; any other is logged and named by type."""
        job = self._set(arn, status=running)
        if job is None:  # deleted meanwhile
            return
        self.worker.pause()
        try:
            changes = work(job) or {}
        except expected as err:
            self._set(arn, status=failed, failureReason=str(err))
            return
        except Exception as err:
            log.exception("job %s failed", arn)
            self._set(arn, status=failed, failureReason=f"{type(err).__name__}: {err}")
            return
        self._set(arn, status=done, **changes)

    def _new_batch_job(
        self,
        kind: str,
        arn_path: str,
        params: dict,
        version: dict,
        *,
        default_results: int,
        max_results: int,
        run: Callable[[str], None],
        **members,
    ) -> str:
        """What CreateBatchInferenceJob and CreateBatchSegmentJob share: the filter and numResults
        checked, the job stored CREATE PENDING (with the caller's own `members`), `run(arn)` queued."""
        if params.get("filterArn"):
            self._get("filter", params["filterArn"])
        num_results = params.get("numResults", default_results)
        if not 1 <= num_results <= max_results:
            raise InvalidInput(f"numResults {num_results} is outside 1..{max_results}")
        arn = self.arn(f"{arn_path}/{params['jobName']}")
        body = {
            "jobName": params["jobName"],
            "filterArn": params.get("filterArn"),
            "solutionVersionArn": version["solutionVersionArn"],
            "numResults": num_results,
            "jobInput": params["jobInput"],
            "jobOutput": params["jobOutput"],
            **members,
            "status": "CREATE PENDING",
        }
        self._new(kind, arn, body, params.get("tags"))
        self.worker.submit(lambda: run(arn), job=True)
        return arn

    def _activate_later(self, arn: str, on_active=None) -> None:
        """CREATE PENDING -> CREATE IN_PROGRESS -> ACTIVE in the background."""

        def transition() -> None:
            self.worker.pause()
            if self._set(arn, status="CREATE IN_PROGRESS") is None:
                return
            self.worker.pause()
            try:
                if on_active:
                    on_active()
            except Exception as err:
                self._set(arn, status="CREATE FAILED", failureReason=str(err))
                return
            self._set(arn, status="ACTIVE")

        self.worker.submit(transition)

    def _recover(self) -> None:
        """After a restart: jobs cut short end CREATE FAILED; plain resources finish becoming ACTIVE."""
        jobs = (
            "datasetImportJob",
            "solutionVersion",
            "batchInferenceJob",
            "datasetExportJob",
            "batchSegmentJob",
        )
        for kind in KINDS:
            for body in self.store.list(kind):
                arn = body[KINDS[kind].arn_key]
                status = body.get("status")
                resume_update = getattr(self, "_resume_update", None)  # UpdateDataset / UpdateSolution
                if resume_update is not None:
                    resume_update(kind, body)
                own_recovery = getattr(self, f"_recover_{kind}", None)  # a family with statuses of its own
                if own_recovery is not None:
                    own_recovery(body)
                elif kind in jobs and status in (*RUNNING, "CREATE STOPPING"):
                    if status == "CREATE STOPPING":
                        self._set(arn, status="CREATE STOPPED")
                    else:
                        self._set(arn, status="CREATE FAILED", failureReason=INTERRUPTED)
                    if kind == "solutionVersion":
                        self._refresh_latest_version(body["solutionArn"])
                elif kind == "campaign" and status in RUNNING:
                    self._activate_later(arn, lambda b=body: self._model(b["solutionVersionArn"]))
                elif status in RUNNING:
                    self._activate_later(arn)
                if kind == "campaign":
                    update = body.get("latestCampaignUpdate")
                    if update and update.get("status") in RUNNING:
                        self._run_campaign_update(arn)
                    elif status == "ACTIVE":
                        self.worker.submit(lambda b=body: self._model(b["solutionVersionArn"]))

    def _check_tags(self, tags: list) -> None:
        if len(tags) > MAX_TAGS:
            raise TooManyTags(f"{len(tags)} tags, at most {MAX_TAGS} are allowed")

    def _paginate(self, items: list[dict], params: dict, key: str) -> dict:
        start = 0
        if params.get("nextToken"):
            try:
                start = int(params["nextToken"])
            except ValueError:
                raise InvalidInput(
                    f"nextToken {params['nextToken']!r} is not a token this service issued"
                ) from None
        size = params.get("maxResults") or 100
        if not 1 <= size <= 100:
            raise InvalidInput(f"maxResults {size} is outside 1..100")
        page = {key: items[start : start + size]}
        if start + size < len(items):
            page["nextToken"] = str(start + size)
        return page

    def _summaries(self, kind: str, params: dict) -> dict:
        spec = KINDS[kind]
        where = {}
        if spec.list_parent and params.get(spec.list_parent):
            parent_arn = params[spec.list_parent]
            where[spec.list_parent] = parent_arn
            parent_kind = self.store.kind_of(parent_arn)
            if parent_kind is None:
                raise ResourceNotFound(f"Could not find {parent_arn}")
        summary_shape = shapes.operation_model("personalize", spec.list_operation).output_shape
        members = summary_shape.members[spec.list_key].member.members
        rows = [
            {k: v for k, v in public(body).items() if k in members} for body in self.store.list(kind, **where)
        ]
        return self._paginate(rows, params, spec.list_key)

    def _describe(self, kind: str, arn: str) -> dict:
        body = public(self._get(kind, arn))
        return {KINDS[kind].key: body}

    # tags ----------------------------------------------------------------------------------------
    def _tagged(self, arn: str) -> None:
        if self.store.get(arn) is None:
            raise ResourceNotFound(f"Could not find resource {arn}")

    def tag_resource(self, params: dict) -> dict:
        arn = params["resourceArn"]
        self._tagged(arn)
        merged = self.store.tags(arn) | {t["tagKey"]: t["tagValue"] for t in params["tags"]}
        self._check_tags(list(merged))
        self.store.set_tags(arn, merged)
        return {}

    def untag_resource(self, params: dict) -> dict:
        arn = params["resourceArn"]
        self._tagged(arn)
        self.store.remove_tags(arn, params["tagKeys"])
        return {}

    def list_tags_for_resource(self, params: dict) -> dict:
        arn = params["resourceArn"]
        self._tagged(arn)
        return {"tags": [{"tagKey": k, "tagValue": v} for k, v in self.store.tags(arn).items()]}
