"""How an app database's tables and columns map onto Personalize datasets.

The pipeline config builds one `DatasetMapping` per dataset. The extraction SQL, the CSV header and
the Avro schema are all generated from it, so header and schema can never disagree. Table and column
names come from config, so they are validated here and always quoted: nothing from config reaches
SQL unchecked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from personalize_contract.data_rules import CORE_DATASET_TYPES, RECORD_KEY_FIELDS, DatasetSchema, Field

# A plain SQL identifier; quoted on use, so reserved words are fine but quotes and dots are not.
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
# Avro field names (Personalize schemas are Avro records).
AVRO_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# Personalize's reserved fields with their usual Avro type; anything else defaults to a string.
DEFAULT_TYPES = {
    "USER_ID": "string",
    "ITEM_ID": "string",
    "TIMESTAMP": "long",
    "EVENT_TYPE": "string",
    "EVENT_VALUE": "float",
    "IMPRESSION": "string",
    "RECOMMENDATION_ID": "string",
    "CREATION_TIMESTAMP": "long",
}
DEFAULT_NULLABLE = frozenset({"EVENT_VALUE", "IMPRESSION", "RECOMMENDATION_ID"})
# Fields whose app column holds a timestamp that the query turns into epoch seconds.
TIMESTAMP_FIELDS = frozenset({"TIMESTAMP", "CREATION_TIMESTAMP"})
# How an app column holds a time: a date/time type, or an integer count since 1970 in a declared unit
# (an integer read as a date is a Julian day on SQLite: the unit is never guessed).
TIME_UNITS = ("datetime", "seconds", "milliseconds")
EPOCH_UNITS = ("seconds", "milliseconds")


class MappingError(ValueError):
    """A column mapping the extractor refuses; the message names the offending entry."""


def check_identifier(name: object, what: str) -> str:
    if not isinstance(name, str) or not IDENTIFIER.fullmatch(name):
        raise MappingError(
            f"{what} {name!r} is not a plain SQL identifier (letters, digits, underscore; not starting "
            "with a digit; at most 63 characters)"
        )
    return name


def quote_identifier(name: str) -> str:
    """Double-quoted, as both PostgreSQL and SQLite read it; `name` is already validated."""
    return f'"{name}"'


@dataclass(frozen=True)
class FieldMapping:
    """One Personalize field and the app column it is read from."""

    field: str
    column: str
    type: str = "string"
    nullable: bool = False
    categorical: bool = False
    # The column is a timestamp; the query converts it to epoch seconds (the field must be int/long).
    epoch_seconds: bool = False
    # The column is an integer epoch in this unit ("seconds" | "milliseconds"); the query converts
    # it to epoch seconds.
    epoch_unit: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.field, str) or not AVRO_NAME.fullmatch(self.field):
            raise MappingError(f"Personalize field name {self.field!r} is not a valid Avro name")
        check_identifier(self.column, f"column for {self.field}")
        if self.epoch_unit is not None and self.epoch_unit not in EPOCH_UNITS:
            raise MappingError(
                f"field {self.field}: epoch unit {self.epoch_unit!r} is not one of {EPOCH_UNITS}"
            )
        if self.epoch_seconds and self.epoch_unit is not None:
            raise MappingError(f"field {self.field}: a column is a datetime or an epoch, not both")
        if (self.epoch_seconds or self.epoch_unit) and self.type not in ("int", "long"):
            raise MappingError(f"field {self.field}: epoch seconds need type long, not {self.type!r}")

    @property
    def time_unit(self) -> str | None:
        """How the column holds a time ("datetime", "seconds", "milliseconds"); None: not converted."""
        return "datetime" if self.epoch_seconds else self.epoch_unit

    def to_field(self) -> Field:
        return Field(self.field, self.type, self.nullable, self.categorical)


@dataclass(frozen=True)
class DatasetMapping:
    """One Personalize dataset read from one app table (optionally schema-qualified: `schema.table`)."""

    dataset_type: str
    table: str
    fields: tuple[FieldMapping, ...]
    # INTERACTIONS: the timestamp column the data interval filters on.
    time_column: str | None = None
    schema_name: str | None = None

    def __post_init__(self) -> None:
        if self.dataset_type not in CORE_DATASET_TYPES:
            raise MappingError(f"dataset type {self.dataset_type!r} is not one of {CORE_DATASET_TYPES}")
        if not isinstance(self.table, str):
            raise MappingError(f"table {self.table!r} must be a string")
        parts = self.table.split(".")
        if len(parts) > 2:
            raise MappingError(f"table {self.table!r}: use `table` or `schema.table`")
        for part in parts:
            check_identifier(part, f"table name part of {self.table!r}")
        if self.dataset_type == "INTERACTIONS":
            if self.time_column is None:
                raise MappingError("INTERACTIONS mapping needs time_column (the interval filters on it)")
            check_identifier(self.time_column, "time_column")
        elif self.time_column is not None:
            raise MappingError(f"{self.dataset_type} is a full snapshot: time_column must not be set")
        for f in self.fields:
            if not isinstance(f, FieldMapping):
                raise MappingError(f"{self.dataset_type} fields must be FieldMapping, got {f!r}")
        # Builds the schema now so a mapping Personalize would refuse fails at config parse time.
        schema_for(self)

    @property
    def time_column_unit(self) -> str:
        """How the interval's time column holds time: a mapped time field's unit, else a datetime."""
        for f in self.fields:
            if f.column == self.time_column and f.time_unit is not None:
                return f.time_unit
        return "datetime"

    @property
    def columns(self) -> list[str]:
        """Every app column the extraction reads, mapped fields first, each once."""
        names = [f.column for f in self.fields]
        if self.time_column is not None:
            names.append(self.time_column)
        return list(dict.fromkeys(names))

    @classmethod
    def from_columns(
        cls,
        dataset_type: str,
        table: str,
        columns: Mapping[str, str],
        *,
        types: Mapping[str, str] | None = None,
        categorical: Iterable[str] = (),
        nullable: Iterable[str] | None = None,
        time_column: str | None = None,
        schema_name: str | None = None,
        time_units: Mapping[str, str] | None = None,
    ) -> DatasetMapping:
        """Build from `{Personalize field: app column}`, with Personalize's usual types and nullability.

        TIMESTAMP and CREATION_TIMESTAMP columns are converted to epoch seconds; for INTERACTIONS the
        interval filters on the TIMESTAMP column unless `time_column` says otherwise.
        """
        types = dict(types or {})
        time_units = dict(time_units or {})
        for name, unit in time_units.items():
            if name not in TIMESTAMP_FIELDS or name not in columns:
                raise MappingError(
                    f"{dataset_type}: time_units names {name!r}, which is not a mapped time field "
                    f"({sorted(TIMESTAMP_FIELDS & set(columns))})"
                )
            if unit not in TIME_UNITS:
                raise MappingError(f"{dataset_type}: time_units.{name}: {unit!r} is not one of {TIME_UNITS}")
        categorical = set(categorical)
        nullable_set = DEFAULT_NULLABLE & set(columns) if nullable is None else set(nullable)
        unknown = (set(types) | categorical | nullable_set) - set(columns)
        if unknown:
            raise MappingError(
                f"{dataset_type}: types/categorical/nullable name unmapped fields {sorted(unknown)}"
            )
        fields = tuple(
            FieldMapping(
                field=name,
                column=column,
                type=types.get(name, DEFAULT_TYPES.get(name, "string")),
                nullable=name in nullable_set,
                categorical=name in categorical,
                epoch_seconds=name in TIMESTAMP_FIELDS and time_units.get(name, "datetime") == "datetime",
                epoch_unit=time_units[name] if time_units.get(name, "datetime") != "datetime" else None,
            )
            for name, column in columns.items()
        )
        if dataset_type == "INTERACTIONS" and time_column is None:
            time_column = columns.get("TIMESTAMP")
        return cls(dataset_type, table, fields, time_column, schema_name)

    @property
    def field_names(self) -> list[str]:
        return [f.field for f in self.fields]


def fields_in_csv_order(mapping: DatasetMapping) -> list[FieldMapping]:
    """The record key's fields first (see rules.RECORD_KEY_FIELDS), then the others as mapped: with
    the key a prefix of every line, the extractor spots duplicates by comparing line prefixes."""
    key = [n for n in RECORD_KEY_FIELDS[mapping.dataset_type] if n in mapping.field_names]
    by_name = {f.field: f for f in mapping.fields}
    return [by_name[n] for n in key] + [f for f in mapping.fields if f.field not in key]


def schema_for(mapping: DatasetMapping) -> DatasetSchema:
    """The Personalize schema for the mapping, its fields in the CSV's column order."""
    name = mapping.schema_name or mapping.dataset_type.title()
    return DatasetSchema(
        mapping.dataset_type, tuple(f.to_field() for f in fields_in_csv_order(mapping)), name
    )


# The demo app database every engineer agreed on (see the README's data section).
DEMO_INTERACTIONS = DatasetMapping.from_columns(
    "INTERACTIONS",
    "events",
    {
        "USER_ID": "user_id",
        "ITEM_ID": "item_id",
        "TIMESTAMP": "occurred_at",
        "EVENT_TYPE": "event_type",
        "EVENT_VALUE": "event_value",
    },
)
DEMO_ITEMS = DatasetMapping.from_columns(
    "ITEMS",
    "items",
    {"ITEM_ID": "item_id", "CATEGORY": "category", "PRICE": "price", "CREATION_TIMESTAMP": "created_at"},
    types={"PRICE": "float"},
    categorical=["CATEGORY"],
)
DEMO_USERS = DatasetMapping.from_columns(
    "USERS",
    "users",
    {"USER_ID": "user_id", "TIER": "tier", "REGION": "region"},
    categorical=["TIER", "REGION"],
)

__all__ = [
    "DEMO_INTERACTIONS",
    "DEMO_ITEMS",
    "DEMO_USERS",
    "DatasetMapping",
    "FieldMapping",
    "MappingError",
    "schema_for",
]
