"""Online metrics: the `metric_attribution` config and what the metric attribution's S3 output says.

A metric attribution (Personalize) counts or sums the events recorded with PutEvents that carry a
recommendationId, per metric, event type and source (the campaign or recommender that served the
recommendation), and writes them to its S3 output in CSV reports with the columns
METRIC_NAME, EVENT_TYPE, VALUE, MATH_FUNCTION, EVENT_ATTRIBUTION_SOURCE, TIMESTAMP (window start,
epoch seconds). A solution version's online metric is the sum of its campaign's rows while it
was the one deployed: from its history record until the next deployed record.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from personalize_contract.names import NAME_MAX_LENGTH, NAME_PATTERN
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

OUTPUT_FOLDER = "metric_attribution"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AttributedMetric(_Strict):
    # Upper case by convention in AWS's examples; the name the reports and the run report show.
    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_]+$", min_length=1, max_length=256)]
    event_type: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    # SAMPLECOUNT(): events of the type; SUM: the sum of an interactions column (EVENT_VALUE).
    function: Literal["SAMPLECOUNT", "SUM"] = "SAMPLECOUNT"
    column: Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z0-9_]*$")] = "EVENT_VALUE"

    @property
    def expression(self) -> str:
        return "SAMPLECOUNT()" if self.function == "SAMPLECOUNT" else f"SUM(Interactions.{self.column})"

    def as_personalize(self) -> dict[str, str]:
        return {"eventType": self.event_type, "metricName": self.name, "expression": self.expression}


class MetricAttributionConfig(_Strict):
    """Created (or updated) with the dataset group by ingest; output under `PREFIX/metric_attribution/`."""

    name: Annotated[str, StringConstraints(pattern=NAME_PATTERN, max_length=NAME_MAX_LENGTH)] | None = None
    metrics: list[AttributedMetric] = Field(min_length=1, max_length=10)

    @model_validator(mode="after")
    def _unique_names(self) -> MetricAttributionConfig:
        names = [m.name for m in self.metrics]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"metrics: names repeated: {repeated}")
        return self


def check_metric_attribution(config: Any) -> None:
    """SUM needs a field the interactions dataset has (config is a PipelineConfig)."""
    attribution = config.metric_attribution
    if attribution is None:
        return
    fields = set(config.datasets.interactions.columns)
    for index, metric in enumerate(attribution.metrics):
        if metric.function == "SUM" and metric.column not in fields:
            raise ValueError(
                f"metric_attribution.metrics.{index}.column: {metric.column} is not a field of "
                f"datasets.interactions.columns {sorted(fields)}"
            )


def read_rows(s3: Any, bucket: str, folder_key: str) -> list[dict[str, str]]:
    """Every row of every CSV report under the output folder."""
    rows: list[dict[str, str]] = []
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=folder_key.rstrip("/") + "/"
    ):
        for item in page.get("Contents", []):
            if item["Key"].endswith(".csv"):
                body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read().decode("utf-8")
                rows.extend(csv.DictReader(io.StringIO(body)))
    return rows


def campaign_totals(rows: Sequence[Mapping[str, str]], source_arn: str) -> dict[str, float]:
    """{metric: value} of everything the output attributes to one campaign (or recommender) so far."""
    totals: dict[str, float] = {}
    for row in rows:
        if row.get("EVENT_ATTRIBUTION_SOURCE") == source_arn:
            totals[row["METRIC_NAME"]] = totals.get(row["METRIC_NAME"], 0.0) + float(row["VALUE"])
    return totals


def online_metrics_by_version(records: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Solution version ARN -> {metric: value} earned while it was deployed.

    Each history record carries the campaign's running totals when it was written (`online_totals`);
    a deployed version earned the difference between its own record and the next deployed record
    (or the newest record, for the version serving now). The reports' 15-minute windows are too
    coarse to split by time; running totals taken at each record are exact at record time.
    """
    result: dict[str, dict[str, float]] = {}
    known = [r for r in records if isinstance(r.get("online_totals"), Mapping)]
    for index, record in enumerate(known):
        if not record.get("deployed"):
            continue
        later = [r for r in known[index + 1 :] if r.get("deployed")]
        end = later[0] if later else known[-1]
        start, stop = record["online_totals"], end["online_totals"]
        result[record["solution_version_arn"]] = {
            name: round(stop.get(name, 0.0) - start.get(name, 0.0), 6)
            for name in sorted(set(start) | set(stop))
        }
    return result


def online_metrics_markdown(records: Sequence[Mapping[str, Any]]) -> str:
    """The run report's section: each deployed version's online metrics next to its offline precision."""
    by_version = online_metrics_by_version(records)
    if not by_version:
        return ""
    names = sorted({name for values in by_version.values() for name in values})
    offline = {r["solution_version_arn"]: r.get("metrics") or {} for r in records}
    lines = [
        "",
        "## Online metrics (metric attribution, while deployed)",
        "",
        "| solution version | precision_at_25 (offline) | " + " | ".join(names) + " |",
        "|---|---:|" + "---:|" * len(names),
    ]
    for arn, values in by_version.items():
        precision = offline.get(arn, {}).get("precision_at_25")
        cells = " | ".join(f"{values.get(name, 0.0):g}" for name in names)
        shown = "-" if precision is None else f"{precision:.4f}"
        lines.append(f"| `{arn.rsplit('/', 1)[-1]}` | {shown} | {cells} |")
    return "\n".join(lines) + "\n"
