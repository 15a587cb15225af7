"""Data deletion jobs (erasing users) and dataset export jobs (a dataset's records to S3 as CSV).

Deletion (botocore DataDeletionJob): PENDING > IN_PROGRESS > COMPLETED | FAILED. The input is CSV
with a single USER_ID column, one file or every file under a folder/ (and its sub folders). The
listed users' records leave the group's Item interactions and Users datasets and its recorded
events, so no later training sees them; models trained before keep what they learnt, as on AWS
until it has retrained. numDeleted counts the records removed.

Export (botocore DatasetExportJob): CREATE PENDING > CREATE IN_PROGRESS > ACTIVE | CREATE FAILED.
ingestionMode (default PUT): BULK the records imported by import jobs, PUT those recorded with
PutEvents / PutItems / PutUsers, ALL both (Items and Users: the newest record per ID). Records
equal in every field are written once. Output: `<path>/<jobName>/part-00000.csv`, header first.
"""

from __future__ import annotations

import csv
import io

import pandas as pd

from include.local_personalize import datasets as data
from include.local_personalize.backend.core import INTERRUPTED
from include.local_personalize.errors import InvalidInput, ResourceInUse, ResourceNotFound

USER_DATASET_TYPES = ("INTERACTIONS", "USERS")
DELETION_RUNNING = ("PENDING", "IN_PROGRESS")


class DeletionInputError(ValueError):
    pass


def read_user_ids(uri: str) -> list[str]:
    """The USER_IDs a deletion job names; every file must be CSV with a single USER_ID column."""
    client = data.s3_client()
    users: list[str] = []
    for bucket, key in data.list_import_objects(uri):
        text = client.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8-sig")
        rows = csv.reader(io.StringIO(text, newline=""))
        header = [h.strip() for h in next(rows, [])]
        if header != ["USER_ID"]:
            raise DeletionInputError(
                f"s3://{bucket}/{key} line 1: the header must be the single column USER_ID, found {header}"
            )
        for row in rows:
            if len(row) > 1:
                raise DeletionInputError(
                    f"s3://{bucket}/{key} line {rows.line_num}: {len(row)} fields, expected 1"
                )
            if row and row[0].strip():
                users.append(row[0].strip())
    return users


class DataJobsMixin:
    """Part of `PersonalizeBackend`; uses `BackendCore`'s state and helpers through `self`."""

    # data deletion jobs --------------------------------------------------------------------------
    def create_data_deletion_job(self, params: dict) -> dict:
        group = self._get("datasetGroup", params["datasetGroupArn"])
        location = (params.get("dataSource") or {}).get("dataLocation")
        if not location:
            raise InvalidInput("dataSource.dataLocation is required: the S3 path of a CSV of USER_IDs")
        arn = self.arn(f"data-deletion-job/{params['jobName']}")
        body = {
            "jobName": params["jobName"],
            "datasetGroupArn": group["datasetGroupArn"],
            "dataSource": {"dataLocation": location},
            "roleArn": params["roleArn"],
            "status": "PENDING",
        }
        self._new("dataDeletionJob", arn, body, params.get("tags"))
        self.worker.submit(lambda: self._run_data_deletion(arn), job=True)
        return {"dataDeletionJobArn": arn}

    def _run_data_deletion(self, arn: str) -> None:
        def erase(job: dict) -> dict:
            users = read_user_ids(job["dataSource"]["dataLocation"])
            return {"numDeleted": self._erase_users(job["datasetGroupArn"], set(users))}

        self._run_job(
            arn,
            erase,
            (data.ImportFailure, DeletionInputError, ResourceNotFound),
            running="IN_PROGRESS",
            done="COMPLETED",
            failed="FAILED",
        )

    def _erase_users(self, group_arn: str, users: set[str]) -> int:
        group = self._get("datasetGroup", group_arn)
        deleted = 0
        with self._merge_lock:
            for dataset_type in USER_DATASET_TYPES:
                for load, save in (
                    (self.files.load, self.files.save),
                    (self.files.load_put, self.files.save_put),
                ):
                    frame = load(group["name"], dataset_type)
                    if frame is None or "USER_ID" not in frame.columns:
                        continue
                    erased = frame["USER_ID"].isin(users)
                    if erased.any():
                        save(group["name"], dataset_type, frame[~erased])
                        if load == self.files.load:
                            deleted += int(erased.sum())
        with self.store.lock:
            deleted += self.store.delete_user_events(group_arn, sorted(users))
            records = self._event_records.get(group_arn, [])
            self._event_records[group_arn] = [r for r in records if r.get("USER_ID") not in users]
            for user in users:
                self._events.pop((group_arn, user), None)
        self._group_data_changed(group_arn)
        return deleted

    def describe_data_deletion_job(self, params: dict) -> dict:
        return self._describe("dataDeletionJob", params["dataDeletionJobArn"])

    def list_data_deletion_jobs(self, params: dict) -> dict:
        return self._summaries("dataDeletionJob", params)

    def _recover_dataDeletionJob(self, body: dict) -> None:
        if body["status"] in DELETION_RUNNING:
            self._set(body["dataDeletionJobArn"], status="FAILED", failureReason=INTERRUPTED)

    # dataset export jobs -------------------------------------------------------------------------
    def create_dataset_export_job(self, params: dict) -> dict:
        dataset = self._get("dataset", params["datasetArn"])
        if dataset["status"] != "ACTIVE":
            raise ResourceInUse(f"Dataset {dataset['datasetArn']} is {dataset['status']}, not ACTIVE")
        arn = self.arn(f"dataset-export-job/{params['jobName']}")
        body = {
            "jobName": params["jobName"],
            "datasetArn": dataset["datasetArn"],
            "ingestionMode": params.get("ingestionMode") or "PUT",
            "roleArn": params["roleArn"],
            "jobOutput": params["jobOutput"],
            "status": "CREATE PENDING",
        }
        self._new("datasetExportJob", arn, body, params.get("tags"))
        self.worker.submit(lambda: self._run_dataset_export(arn), job=True)
        return {"datasetExportJobArn": arn}

    def _run_dataset_export(self, arn: str) -> None:
        self._run_job(arn, self._export, (data.ImportFailure, ResourceNotFound))

    def _export(self, job: dict) -> None:
        frame = self._export_records(job["datasetArn"], job["ingestionMode"])
        bucket, prefix = data.split_s3_uri(job["jobOutput"]["s3DataDestination"]["path"])
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        body = frame.to_csv(index=False, lineterminator="\n").encode()
        data.s3_client().put_object(Bucket=bucket, Key=f"{prefix}{job['jobName']}/part-00000.csv", Body=body)

    def _export_records(self, dataset_arn: str, mode: str) -> pd.DataFrame:
        dataset = self._get("dataset", dataset_arn)
        group = self._get("datasetGroup", dataset["datasetGroupArn"])
        fields = self._dataset_schema(dataset).field_names
        dataset_type = dataset["datasetType"]
        stored = self.files.load(group["name"], dataset_type)
        if dataset_type == "INTERACTIONS":
            recorded = self._event_records.get(dataset["datasetGroupArn"], [])
            put = pd.DataFrame(recorded, columns=fields, dtype=str).fillna("") if recorded else None
            bulk = stored
        else:
            put = self.files.load_put(group["name"], dataset_type)
            # PutItems / PutUsers merged into the stored records; the rest came in bulk.
            bulk = stored
            if stored is not None and put is not None:
                merged = stored.merge(put.drop_duplicates(), how="left", indicator=True)
                bulk = stored[(merged["_merge"] == "left_only").to_numpy()]
        # ALL: Items and Users keep the newest record per ID, which the stored records already are.
        every = [bulk, put] if dataset_type == "INTERACTIONS" else [stored]
        chosen = {"BULK": [bulk], "PUT": [put], "ALL": every}[mode]
        frames = [f.reindex(columns=fields, fill_value="") for f in chosen if f is not None]
        if not frames:
            return pd.DataFrame(columns=fields)
        return pd.concat(frames, ignore_index=True).drop_duplicates(ignore_index=True)

    def describe_dataset_export_job(self, params: dict) -> dict:
        return self._describe("datasetExportJob", params["datasetExportJobArn"])

    def list_dataset_export_jobs(self, params: dict) -> dict:
        return self._summaries("datasetExportJob", params)
