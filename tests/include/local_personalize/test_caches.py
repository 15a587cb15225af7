"""The service's per-group caches must never outlive the data they were built from."""

from __future__ import annotations

import json
import threading
import time

from include.local_personalize import seed
from include.local_personalize.backend import campaigns, core
from include.local_personalize.models import PersonalizeBackend


def _wait_active(describe, key: str) -> None:
    deadline = time.monotonic() + 30
    while describe()[key]["status"] != "ACTIVE":
        assert time.monotonic() < deadline, f"{key} never became ACTIVE"
        time.sleep(0.01)


def _items_dataset(backend: PersonalizeBackend, name: str) -> tuple[str, str]:
    """An ACTIVE dataset group holding one ACTIVE ITEMS dataset (ITEM_ID, CATEGORY)."""
    group_arn = backend.create_dataset_group({"name": name})["datasetGroupArn"]
    _wait_active(lambda: backend.describe_dataset_group({"datasetGroupArn": group_arn}), "datasetGroup")
    schema_arn = backend.create_schema(
        {"name": f"{name}-items", "schema": seed.avro_schema("ITEMS", seed.ITEM_ID, seed.CATEGORY)}
    )["schemaArn"]
    dataset_arn = backend.create_dataset(
        {"name": "items", "schemaArn": schema_arn, "datasetGroupArn": group_arn, "datasetType": "ITEMS"}
    )["datasetArn"]
    _wait_active(lambda: backend.describe_dataset({"datasetArn": dataset_arn}), "dataset")
    return group_arn, dataset_arn


def test_items_changed_while_group_frames_are_built_are_not_hidden_by_the_cache(tmp_path, monkeypatch):
    backend = PersonalizeBackend(tmp_path)
    try:
        group_arn, dataset_arn = _items_dataset(backend, "cache-race")

        def put_item(category: str) -> None:
            properties = json.dumps({"category": category})
            backend.put_items(
                {"datasetArn": dataset_arn, "items": [{"itemId": "i1", "properties": properties}]}
            )

        put_item("shoes")

        # A request builds the group's frames from the data as it was, and is overtaken by PutItems
        # before it stores them: the stored frames would hide the new item data until the next import.
        built, resume = threading.Event(), threading.Event()
        real_group_frames = campaigns.GroupFrames

        def slow_group_frames(*args):
            frames = real_group_frames(*args)
            if not built.is_set():
                built.set()
                resume.wait(10)
            return frames

        monkeypatch.setattr(campaigns, "GroupFrames", slow_group_frames)
        request = threading.Thread(target=backend._group_frames_for, args=(group_arn,))
        request.start()
        assert built.wait(10)
        put_item("hats")
        resume.set()
        request.join(10)

        assert backend._group_frames_for(group_arn).item("i1")["CATEGORY"] == "hats"
    finally:
        backend.close()


def test_group_frames_of_a_group_without_interactions_serve_items():
    import pandas as pd

    items = pd.DataFrame({"ITEM_ID": ["i1"], "CATEGORY": ["shoes"]})
    frames = core.GroupFrames(0, pd.DataFrame({"USER_ID": [], "ITEM_ID": [], "TIMESTAMP": []}), items, None)
    assert frames.history("u1", ()).empty
    assert frames.item("i1")["CATEGORY"] == "shoes"


def test_put_items_during_an_items_import_is_not_lost(tmp_path, monkeypatch, s3_client, s3_bucket):
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_client.meta.endpoint_url)
    backend = PersonalizeBackend(tmp_path)
    try:
        _, dataset_arn = _items_dataset(backend, "merge-race")
        s3_client.put_object(Bucket=s3_bucket, Key="items.csv", Body=b"ITEM_ID,CATEGORY\ni2,socks\n")

        # The import job reads the stored items, then PutItems arrives before the job writes them back.
        loaded, resume = threading.Event(), threading.Event()
        real_load = backend.files.load

        def load_then_pause(*args):
            frame = real_load(*args)
            if threading.current_thread().name.startswith("personalize-jobs") and not loaded.is_set():
                loaded.set()
                resume.wait(10)
            return frame

        monkeypatch.setattr(backend.files, "load", load_then_pause)
        job_arn = backend.create_dataset_import_job(
            {
                "jobName": "merge-race-import",
                "datasetArn": dataset_arn,
                "dataSource": {"dataLocation": f"s3://{s3_bucket}/items.csv"},
                "importMode": "INCREMENTAL",
            }
        )["datasetImportJobArn"]
        assert loaded.wait(10)
        put = threading.Thread(
            target=backend.put_items,
            args=(
                {
                    "datasetArn": dataset_arn,
                    "items": [{"itemId": "i1", "properties": '{"category": "hats"}'}],
                },
            ),
        )
        put.start()
        put.join(0.5)  # with merges serialised, PutItems waits for the import: let the import go on
        resume.set()
        put.join(10)
        _wait_active(
            lambda: backend.describe_dataset_import_job({"datasetImportJobArn": job_arn}), "datasetImportJob"
        )

        stored = real_load("merge-race", "ITEMS")
        assert sorted(stored["ITEM_ID"]) == ["i1", "i2"]
    finally:
        backend.close()
