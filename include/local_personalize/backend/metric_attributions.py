"""Metric attributions: what recommendations earn, from events that carry a recommendationId.

GetRecommendations and GetPersonalizedRanking answer with a recommendationId; the service remembers
which campaign or recommender issued it. A PutEvents event of a metric's eventType adds to the
metric: SAMPLECOUNT() counts events, SUM(Interactions.COL) / SUM(Items.COL) adds the event's (or its
item's) numeric value. Its source (EVENT_ATTRIBUTION_SOURCE) is, as AWS documents ("Event metrics
and attribution reports"), its metricAttribution.eventAttributionSource, else the campaign or
recommender that issued its recommendationId, else SOURCE_NAME_UNDEFINED. Totals are kept per
metric, event type, source and 15-minute window, persisted with the resource, and written to the
metricsOutputConfig path in AWS's report layout ("Publishing metric attribution reports to Amazon
S3"): CSV `METRIC_NAME,EVENT_TYPE,VALUE,MATH_FUNCTION,EVENT_ATTRIBUTION_SOURCE,TIMESTAMP`, one file
per window `AggregatedAttributionMetrics-PutEvents-<window start>.csv`, rewritten as the window fills.
(AWS sends PutEvents metrics to CloudWatch and writes S3 reports for bulk imports; there is no local
CloudWatch, so the S3 report carries both. See docs/PERSONALIZE_FACTS.md.) An import job with
publishAttributionMetricsToS3 writes a new report of its records,
`AggregatedAttributionMetrics-<importMode>-<epoch seconds>.csv`.
ListMetricAttributionMetrics lists the metric definitions, as botocore's output shape says.
"""

from __future__ import annotations

import re
import threading
import time
import uuid

import pandas as pd

from include.local_personalize import datasets as data
from include.local_personalize.backend.core import log
from include.local_personalize.errors import InvalidInput, ResourceAlreadyExists, ResourceInUse

MAX_METRICS = 10  # CreateMetricAttribution: "Array Members: Maximum number of 10 items"
WINDOW_SECONDS = 900  # the report's rows are 15-minute intervals (AWS's example)
MAX_REMEMBERED_RECOMMENDATIONS = 1_000_000
SAVE_BATCH = 256
SAVE_EVERY_SECONDS = 1.0
REPORT_COLUMNS = [
    "METRIC_NAME",
    "EVENT_TYPE",
    "VALUE",
    "MATH_FUNCTION",
    "EVENT_ATTRIBUTION_SOURCE",
    "TIMESTAMP",
]
EXPRESSION = re.compile(
    r"\s*(?:(?P<count>SAMPLECOUNT)\(\s*\)|(?P<sum>SUM)\(\s*(?P<dataset>Interactions|Items)\.(?P<column>\w+)\s*\))\s*",
    re.IGNORECASE,
)
UNDEFINED_SOURCE = "SOURCE_NAME_UNDEFINED"  # AWS's label for events without a source
_report_lock = threading.Lock()  # a report is read and rewritten whole: one writer at a time


def parse_expression(expression: str, where: str) -> tuple[str, str | None, str | None]:
    """(math function, dataset, column) of a metric's expression."""
    match = EXPRESSION.fullmatch(expression)
    if match is None:
        raise InvalidInput(
            f"{where}.expression {expression!r} is not SAMPLECOUNT() or SUM(Interactions.COLUMN) / SUM(Items.COLUMN)"
        )
    if match["count"]:
        return "samplecount", None, None
    return "sum", match["dataset"].capitalize(), match["column"].upper()


class MetricAttributionsMixin:
    """Part of `PersonalizeBackend`; uses `BackendCore`'s state and helpers through `self`."""

    def _issue_recommendation_id(self, source_arn: str) -> str:
        recommendation_id = f"RID-{uuid.uuid4()}"
        sources = self._recommendation_sources
        sources[recommendation_id] = source_arn
        if len(sources) > MAX_REMEMBERED_RECOMMENDATIONS:
            sources.pop(next(iter(sources)), None)
        with self._recommendations_lock:
            self._unsaved_recommendations.append((recommendation_id, source_arn))
            due = (
                len(self._unsaved_recommendations) >= SAVE_BATCH
                or time.monotonic() - self._recommendations_saved_at >= SAVE_EVERY_SECONDS
            )
            start_saving = due and not self._recommendations_saving
            if start_saving:
                self._recommendations_saving = True
        if start_saving:  # in the background, batched: a write per second or per SAVE_BATCH IDs
            self.worker.submit(self._save_recommendations)
        return recommendation_id

    def _save_recommendations(self) -> None:
        """Also called by close(), so a stopped server keeps every ID it issued (a killed one may lose
        the last second's)."""
        with self._recommendations_lock:
            rows, self._unsaved_recommendations = self._unsaved_recommendations, []
        try:
            if rows:
                self.store.add_recommendations(rows, keep=MAX_REMEMBERED_RECOMMENDATIONS)
        finally:
            with self._recommendations_lock:
                self._recommendations_saved_at = time.monotonic()
                self._recommendations_saving = False

    def _check_metrics(self, group_arn: str, metrics: list[dict]) -> None:
        if len(metrics) > MAX_METRICS:
            raise InvalidInput(f"{len(metrics)} metrics; a metric attribution has at most {MAX_METRICS}")
        names = [m["metricName"] for m in metrics]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise InvalidInput(f"metricName given more than once: {duplicated}")
        for index, metric in enumerate(metrics):
            where = f"metrics[{index}]"
            _, dataset_name, column = parse_expression(metric["expression"], where)
            if dataset_name is None:
                continue
            dataset = self._group_dataset(
                group_arn, "INTERACTIONS" if dataset_name == "Interactions" else "ITEMS"
            )
            if dataset is None:
                continue
            fields = {f.name: f for f in self._dataset_schema(dataset).fields}
            if column not in fields:
                raise InvalidInput(f"{where}.expression: {dataset_name} has no field {column}")
            if fields[column].type not in ("int", "long", "float", "double"):
                raise InvalidInput(
                    f"{where}.expression: SUM() needs a numeric field; {column} is {fields[column].type}"
                )

    def create_metric_attribution(self, params: dict) -> dict:
        group = self._get("datasetGroup", params["datasetGroupArn"])
        self._check_metrics(group["datasetGroupArn"], params["metrics"])
        arn = self.arn(f"metric-attribution/{params['name']}")
        with self.store.lock:
            existing = self.store.list("metricAttribution", datasetGroupArn=group["datasetGroupArn"])
            if existing and self.store.get(arn) is None:
                raise ResourceAlreadyExists(
                    f"Dataset group {group['datasetGroupArn']} already has metric attribution "
                    f"{existing[0]['metricAttributionArn']}; update it instead"
                )
            body = {
                "name": params["name"],
                "datasetGroupArn": group["datasetGroupArn"],
                "metricsOutputConfig": params["metricsOutputConfig"],
                "status": "CREATE PENDING",
                "_metrics": params["metrics"],
                "_totals": [],
            }
            self._new("metricAttribution", arn, body)
        self._activate_later(arn)
        return {"metricAttributionArn": arn}

    def describe_metric_attribution(self, params: dict) -> dict:
        return self._describe("metricAttribution", params["metricAttributionArn"])

    def list_metric_attributions(self, params: dict) -> dict:
        return self._summaries("metricAttribution", params)

    def list_metric_attribution_metrics(self, params: dict) -> dict:
        if not params.get("metricAttributionArn"):
            raise InvalidInput("metricAttributionArn is required")
        attribution = self._get("metricAttribution", params["metricAttributionArn"])
        return self._paginate(attribution["_metrics"], params, "metrics")

    def update_metric_attribution(self, params: dict) -> dict:
        if not params.get("metricAttributionArn"):
            raise InvalidInput("metricAttributionArn is required")
        arn = params["metricAttributionArn"]
        with self.store.lock:
            attribution = self._get("metricAttribution", arn)
            if attribution["status"] != "ACTIVE":
                raise ResourceInUse(f"Metric attribution {arn} is {attribution['status']}, not ACTIVE")
            known = {m["metricName"] for m in attribution["_metrics"]}
            unknown = sorted(set(params.get("removeMetrics") or []) - known)
            if unknown:
                raise InvalidInput(f"removeMetrics names metrics the attribution does not have: {unknown}")
            kept = [
                m
                for m in attribution["_metrics"]
                if m["metricName"] not in set(params.get("removeMetrics") or [])
            ]
            metrics = kept + list(params.get("addMetrics") or [])
            self._check_metrics(attribution["datasetGroupArn"], metrics)
            changes: dict = {"_metrics": metrics}
            if params.get("metricsOutputConfig"):
                changes["metricsOutputConfig"] = params["metricsOutputConfig"]
            self._set(arn, **changes)
        return {"metricAttributionArn": arn}

    def delete_metric_attribution(self, params: dict) -> None:
        arn = params["metricAttributionArn"]
        self._get("metricAttribution", arn)
        self.store.delete(arn)

    # attributing events ---------------------------------------------------------------------------
    def _event_source(self, event: dict) -> str:
        """AWS: eventAttributionSource wins; else the campaign or recommender that issued the
        recommendationId; else SOURCE_NAME_UNDEFINED (also for an ID this service never issued)."""
        if event.get("eventAttributionSource"):
            return event["eventAttributionSource"]
        return self._recommendation_sources.get(event.get("recommendationId") or "", UNDEFINED_SOURCE)

    def _add_up(self, group_arn: str, metrics: list[dict], events: list[dict], totals: dict) -> set[int]:
        """Adds the events to `totals` ((metric, event type, function, source, window) -> value);
        returns the windows that changed."""
        windows = set()
        for event in events:
            for metric in metrics:
                if metric["eventType"] != event["eventType"]:
                    continue
                value = self._metric_value(group_arn, metric, event)
                if value is None:
                    continue
                function = parse_expression(metric["expression"], "metric")[0]
                window = int(event["sentAt"]) // WINDOW_SECONDS * WINDOW_SECONDS
                key = (metric["metricName"], metric["eventType"], function, self._event_source(event), window)
                totals[key] = totals.get(key, 0.0) + value
                windows.add(window)
        return windows

    def _active_attributions(self, group_arn: str) -> list[dict]:
        return [
            a
            for a in self.store.list("metricAttribution", datasetGroupArn=group_arn)
            if a["status"] == "ACTIVE"
        ]

    def _attribute_events(self, group_arn: str, events: list[dict]) -> None:
        """PutEvents' events: {"eventType", "recommendationId", "eventAttributionSource", "itemId",
        "values" (field -> text), "sentAt"}; totals persist with the attribution, reports per window."""
        for attribution in self._active_attributions(group_arn):
            with self.store.lock:
                current = self.store.get(attribution["metricAttributionArn"])
                if current is None:
                    continue
                totals = {tuple(row[:2] + row[3:]): row[2] for row in current["_totals"]}
                windows = self._add_up(group_arn, current["_metrics"], events, totals)
                if not windows:
                    continue
                rows = [[k[0], k[1], v, k[2], k[3], k[4]] for k, v in totals.items()]
                self._set(current["metricAttributionArn"], _totals=rows)
            for window in windows:
                self.worker.submit(
                    lambda a=current["metricAttributionArn"], w=window: self._write_report(a, w)
                )

    def _publish_bulk_attribution(self, group_arn: str, frame: pd.DataFrame, import_mode: str) -> None:
        """An import job with publishAttributionMetricsToS3: one new report of the imported interactions."""
        columns = set(frame.columns)
        events = [
            {
                "eventType": row.get("EVENT_TYPE", ""),
                "recommendationId": row.get("RECOMMENDATION_ID") or None,
                "eventAttributionSource": row.get("EVENT_ATTRIBUTION_SOURCE") or None,
                "itemId": row["ITEM_ID"],
                "values": {c: row[c] for c in columns},
                "sentAt": float(row["TIMESTAMP"]),
            }
            for row in frame.to_dict("records")
        ]
        for attribution in self._active_attributions(group_arn):
            totals: dict = {}
            self._add_up(group_arn, attribution["_metrics"], events, totals)
            rows = [[k[0], k[1], v, k[2], k[3], k[4]] for k, v in totals.items()]
            self._put_report(
                attribution, rows, f"AggregatedAttributionMetrics-{import_mode}-{int(time.time())}.csv"
            )

    def _metric_value(self, group_arn: str, metric: dict, event: dict) -> float | None:
        function, dataset_name, column = parse_expression(metric["expression"], "metric")
        if function == "samplecount":
            return 1.0
        if dataset_name == "Interactions":
            raw = event["values"].get(column)
        else:
            item = self._group_frames_for(group_arn).item(event.get("itemId"))
            raw = (item or {}).get(column)
        try:
            return float(raw) if raw not in (None, "") else None
        except (TypeError, ValueError):
            return None

    def _write_report(self, attribution_arn: str, window: int) -> None:
        with _report_lock:
            attribution = self.store.get(attribution_arn)
            if attribution is None:
                return
            rows = [r for r in attribution["_totals"] if r[5] == window]
            self._put_report(attribution, rows, f"AggregatedAttributionMetrics-PutEvents-{window}.csv")

    def _put_report(self, attribution: dict, rows: list[list], name: str) -> None:
        destination = attribution["metricsOutputConfig"].get("s3DataDestination")
        if not destination:
            return
        frame = pd.DataFrame(rows, columns=REPORT_COLUMNS)
        frame["VALUE"] = frame["VALUE"].astype(float)
        arn = attribution["metricAttributionArn"]
        try:
            bucket, prefix = data.split_s3_uri(destination["path"])
            if prefix and not prefix.endswith("/"):
                prefix += "/"
            body = frame.to_csv(index=False, lineterminator="\n").encode()
            data.s3_client().put_object(Bucket=bucket, Key=f"{prefix}{name}", Body=body)
        except (
            Exception
        ) as err:  # the events are recorded either way; the resource says why a report is missing
            log.warning("metric attribution %s: report %s not written: %s", arn, name, err)
            self._set(arn, failureReason=f"report {name} not written: {err}")
            return
        if attribution.get("failureReason"):
            self._set(arn, failureReason=None)
