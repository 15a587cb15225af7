"""Dataset records: reading import files from S3 under Personalize's rules, and keeping the data.

Each dataset's records live in one CSV under the state dir (text exactly as imported, so nothing is
lost to type guessing); `typed_frame` applies the schema's types when the engine needs them.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from urllib.parse import urlparse

import boto3
import pandas as pd
from botocore.exceptions import ClientError
from personalize_contract.data_rules import (
    FLOAT_TYPES,
    INTEGER_TYPES,
    MAX_FULL_IMPORT_BYTES,
    MAX_INCREMENTAL_IMPORT_BYTES,
    DatasetSchema,
)

ID_COLUMN = {"INTERACTIONS": None, "ITEMS": "ITEM_ID", "USERS": "USER_ID"}


class ImportFailure(Exception):
    """An import file Personalize would refuse; the message names file, line and field."""


def split_s3_uri(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ImportFailure(f"{uri} is not an s3://bucket/key location")
    return parsed.netloc, parsed.path.lstrip("/")


def s3_client():
    # Normal endpoint resolution: AWS_ENDPOINT_URL_S3 when set (moto locally), else real S3.
    return boto3.client("s3")


def list_import_objects(uri: str, max_bytes: int | None = None) -> list[tuple[str, str]]:
    """(bucket, key) of every object a data location names: one file, or all files under a folder/."""
    bucket, key = split_s3_uri(uri)
    client = s3_client()
    objects: list[tuple[str, int]] = []
    try:
        if key.endswith("/") or key == "":
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key):
                objects.extend(
                    (o["Key"], o["Size"]) for o in page.get("Contents", []) if not o["Key"].endswith("/")
                )
            if not objects:
                raise ImportFailure(f"{uri} holds no files")
        else:
            head = client.head_object(Bucket=bucket, Key=key)
            objects.append((key, head["ContentLength"]))
    except ClientError as err:
        raise ImportFailure(f"cannot read {uri}: {err.response['Error'].get('Code')}") from err
    total = sum(size for _, size in objects)
    if max_bytes is not None and total > max_bytes:
        raise ImportFailure(
            f"{uri} holds {total} bytes, more than the {max_bytes} bytes this import mode allows"
        )
    return [(bucket, k) for k, _ in sorted(objects)]


def read_import(uri: str, schema: DatasetSchema, import_mode: str) -> pd.DataFrame:
    """All records under `uri`, checked against `schema`; raises ImportFailure at the first bad one."""
    limit = MAX_FULL_IMPORT_BYTES if import_mode == "FULL" else MAX_INCREMENTAL_IMPORT_BYTES
    frames = []
    for bucket, key in list_import_objects(uri, limit):
        body = s3_client().get_object(Bucket=bucket, Key=key)["Body"].read()
        frames.append(parse_csv(f"s3://{bucket}/{key}", body, schema))
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def parse_csv(name: str, content: bytes, schema: DatasetSchema) -> pd.DataFrame:
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ImportFailure(f"{name}: not UTF-8 (byte {err.start})") from err
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if not header:
        raise ImportFailure(f"{name}: empty file, expected a header line")
    header = [h.strip() for h in header]
    problems = schema.check_header(header)
    if problems:
        raise ImportFailure(f"{name} line 1: {'; '.join(problems)}")
    rows = []
    for row in reader:
        if not row:
            continue
        line = reader.line_num
        if len(row) != len(header):
            raise ImportFailure(f"{name} line {line}: {len(row)} fields, the header has {len(header)}")
        record = dict(zip(header, row, strict=True))
        violation = schema.check_record(record)
        if violation:
            raise ImportFailure(f"{name} line {line}: {violation.reason}")
        rows.append([record.get(f, "") for f in schema.field_names])
    return pd.DataFrame(rows, columns=schema.field_names, dtype=str)


class DatasetFiles:
    """Where each dataset's records live, and how imports change them."""

    def __init__(self, root: Path):
        self.root = root

    def path(self, dataset_group_name: str, dataset_type: str) -> Path:
        return self.root / dataset_group_name / f"{dataset_type}.csv"

    def load(self, dataset_group_name: str, dataset_type: str) -> pd.DataFrame | None:
        path = self.path(dataset_group_name, dataset_type)
        if not path.exists():
            return None
        return pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)

    def save(self, dataset_group_name: str, dataset_type: str, frame: pd.DataFrame) -> None:
        path = self.path(dataset_group_name, dataset_type)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        frame.to_csv(partial, index=False)
        partial.replace(path)

    def merge(
        self, dataset_group_name: str, dataset_type: str, new: pd.DataFrame, import_mode: str
    ) -> pd.DataFrame:
        """FULL replaces the dataset's records; INCREMENTAL appends, replacing records with the same ID."""
        existing = self.load(dataset_group_name, dataset_type)
        if import_mode == "FULL" or existing is None or existing.empty:
            merged = new
        else:
            existing = existing.reindex(columns=new.columns, fill_value="")
            id_column = ID_COLUMN[dataset_type]
            if id_column:
                existing = existing[~existing[id_column].isin(set(new[id_column]))]
            merged = pd.concat([existing, new], ignore_index=True)
        self.save(dataset_group_name, dataset_type, merged)
        return merged

    def remove(self, dataset_group_name: str, dataset_type: str) -> None:
        self.path(dataset_group_name, dataset_type).unlink(missing_ok=True)
        self.put_path(dataset_group_name, dataset_type).unlink(missing_ok=True)

    def put_path(self, dataset_group_name: str, dataset_type: str) -> Path:
        """Items / users records that arrived through PutItems / PutUsers (a dataset export's PUT)."""
        return self.root / dataset_group_name / f"{dataset_type}.put.csv"

    def append_put(self, dataset_group_name: str, dataset_type: str, new: pd.DataFrame) -> None:
        path = self.put_path(dataset_group_name, dataset_type)
        path.parent.mkdir(parents=True, exist_ok=True)
        new.to_csv(path, mode="a", header=not path.exists(), index=False)

    def load_put(self, dataset_group_name: str, dataset_type: str) -> pd.DataFrame | None:
        path = self.put_path(dataset_group_name, dataset_type)
        if not path.exists():
            return None
        return pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)

    def save_put(self, dataset_group_name: str, dataset_type: str, frame: pd.DataFrame) -> None:
        path = self.put_path(dataset_group_name, dataset_type)
        partial = path.with_suffix(".partial")
        frame.to_csv(partial, index=False)
        partial.replace(path)


def typed_frame(frame: pd.DataFrame, schema: DatasetSchema) -> pd.DataFrame:
    """Text records with the schema's types applied; empty nullable values become NaN / None."""
    typed = frame.copy()
    for f in schema.fields:
        if f.name not in typed.columns:
            continue
        column = typed[f.name]
        if f.type in INTEGER_TYPES:
            numbers = pd.to_numeric(column.replace("", None))
            typed[f.name] = numbers.astype("int64") if not numbers.isna().any() else numbers
        elif f.type in FLOAT_TYPES:
            typed[f.name] = pd.to_numeric(column.replace("", None)).astype("float64")
        elif f.type == "boolean":
            typed[f.name] = column.str.lower().map({"true": True, "false": False})
        else:
            typed[f.name] = column.astype(str).where(column != "", None) if f.nullable else column.astype(str)
    return typed
