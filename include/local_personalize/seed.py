"""Seed a Personalize service through its API: schemas, datasets, S3 imports, trained versions, campaigns.

For tests and benchmarks that need a trained dataset group but do not test how one is made; the
pipeline itself creates resources through the provider's operators. Every call is a plain boto3
call, so it works against the local service and, in principle, against AWS.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from personalize_contract.data_rules import DatasetSchema, Field
from personalize_contract.recipes import RECIPE_ARN_PREFIX

USER_ID = Field("USER_ID", "string")
ITEM_ID = Field("ITEM_ID", "string")
TIMESTAMP = Field("TIMESTAMP", "long")
EVENT_TYPE = Field("EVENT_TYPE", "string")
EVENT_VALUE = Field("EVENT_VALUE", "float", nullable=True)
CATEGORY = Field("CATEGORY", "string", categorical=True)
PRICE = Field("PRICE", "float")


def avro_schema(dataset_type: str, *fields: Field) -> str:
    """The Avro JSON string CreateSchema takes, for a dataset of this type with these fields."""
    return DatasetSchema(dataset_type, fields, name=dataset_type.title()).to_avro()


INTERACTIONS_SCHEMA = avro_schema("INTERACTIONS", USER_ID, ITEM_ID, TIMESTAMP, EVENT_TYPE)


class SeedError(RuntimeError):
    """A resource ended FAILED, or did not become ACTIVE in time."""


@dataclass(frozen=True)
class Seeder:
    """Creates resources with `personalize` and waits for each to be ACTIVE; data files go to `bucket`."""

    personalize: Any
    s3: Any
    bucket: str
    role_arn: str = "arn:aws:iam::000000000000:role/PersonalizeS3"
    timeout: float = 300.0
    poll_seconds: float = 0.05

    def wait_active(self, describe: Callable[[], dict], key: str) -> dict:
        """Poll a Describe call until `response[key]` is ACTIVE; a FAILED status raises with its reason."""
        deadline = time.monotonic() + self.timeout
        while True:
            resource = describe()[key]
            status = resource["status"]
            if status == "ACTIVE":
                return resource
            if "FAILED" in status:
                raise SeedError(f"{key} ended {status}: {resource.get('failureReason')}")
            if time.monotonic() > deadline:
                raise SeedError(f"{key} still {status} after {self.timeout:.0f} s")
            time.sleep(self.poll_seconds)

    def dataset_group(
        self, name: str, datasets: Mapping[str, tuple[str, bytes]], *, domain: str | None = None
    ) -> dict[str, Any]:
        """A dataset group with one dataset per type, each FULL-imported from its CSV.

        `datasets` maps a dataset type to (Avro schema JSON, CSV bytes). The import jobs run
        together, as Personalize allows; returns the ARNs of the group, and of each dataset and
        its import job by dataset type. `domain` (ECOMMERCE, VIDEO_ON_DEMAND) makes a Domain dataset
        group, which recommenders serve.
        """
        personalize = self.personalize
        self.s3.create_bucket(Bucket=self.bucket)
        group = personalize.create_dataset_group(name=name, **({"domain": domain} if domain else {}))[
            "datasetGroupArn"
        ]
        self.wait_active(lambda: personalize.describe_dataset_group(datasetGroupArn=group), "datasetGroup")
        dataset_arns, jobs = {}, {}
        for dataset_type, (schema, content) in datasets.items():
            resource_name = f"{name}-{dataset_type.lower()}"
            schema_arn = personalize.create_schema(name=resource_name, schema=schema)["schemaArn"]
            dataset = personalize.create_dataset(
                name=resource_name, schemaArn=schema_arn, datasetGroupArn=group, datasetType=dataset_type
            )["datasetArn"]
            self.wait_active(lambda d=dataset: personalize.describe_dataset(datasetArn=d), "dataset")
            dataset_arns[dataset_type] = dataset
            key = f"{name}/{dataset_type.lower()}/part-00000.csv"
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=content)
            jobs[dataset_type] = personalize.create_dataset_import_job(
                jobName=f"{resource_name}-import",
                datasetArn=dataset,
                dataSource={"dataLocation": f"s3://{self.bucket}/{key}"},
                roleArn=self.role_arn,
                importMode="FULL",
            )["datasetImportJobArn"]
        for job in jobs.values():
            self.wait_active(
                lambda j=job: personalize.describe_dataset_import_job(datasetImportJobArn=j),
                "datasetImportJob",
            )
        return {"group": group, "datasets": dataset_arns, "import_jobs": jobs}

    def solution(self, name: str, group: str, recipe_arn: str) -> str:
        """An ACTIVE solution (automatic training off: seeded versions are trained on purpose)."""
        solution = self.personalize.create_solution(
            name=name, datasetGroupArn=group, recipeArn=recipe_arn, performAutoTraining=False
        )["solutionArn"]
        self.wait_active(lambda: self.personalize.describe_solution(solutionArn=solution), "solution")
        return solution

    def solution_version(self, solution: str) -> str:
        """A FULL-trained, ACTIVE solution version of `solution`."""
        version = self.personalize.create_solution_version(solutionArn=solution, trainingMode="FULL")[
            "solutionVersionArn"
        ]
        self.wait_active(
            lambda: self.personalize.describe_solution_version(solutionVersionArn=version), "solutionVersion"
        )
        return version

    def campaign(self, name: str, version: str) -> str:
        campaign = self.personalize.create_campaign(
            name=name, solutionVersionArn=version, minProvisionedTPS=1
        )["campaignArn"]
        self.wait_active(lambda: self.personalize.describe_campaign(campaignArn=campaign), "campaign")
        return campaign

    def filter(self, name: str, group: str, expression: str) -> str:
        filter_arn = self.personalize.create_filter(
            name=name, datasetGroupArn=group, filterExpression=expression
        )["filterArn"]
        self.wait_active(lambda: self.personalize.describe_filter(filterArn=filter_arn), "filter")
        return filter_arn


def csv_bytes(frame) -> bytes:
    """A pandas frame as the CSV Personalize imports: header row, no index, \\n line ends, UTF-8."""
    return frame.to_csv(index=False, lineterminator="\n").encode()


def recipe_arn(recipe: str) -> str:
    return RECIPE_ARN_PREFIX + recipe
