"""Amazon Personalize's data rules, in one place: dataset types, required and key fields, value rules.

Used by the extractor (rows that break a rule are quarantined with the rule's reason), the provider
layer (dataset types) and the local Personalize service's dataset import (a file that breaks a rule
fails the import job, naming file, line and field). Source: the Personalize developer guide,
"Preparing and importing bulk data", "Schema requirements" and "Endpoints and quotas".
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

MAX_ID_LENGTH = 256
MAX_CATEGORICAL_LENGTH = 1000
CATEGORICAL_SEPARATOR = "|"
MIN_IMPORT_RECORDS = 1000
MAX_INCREMENTAL_IMPORT_BYTES = 1024**3
MAX_FULL_IMPORT_BYTES = 100 * 1024**3
MIN_TRAINING_INTERACTIONS = 1000
MIN_TRAINING_USERS = 25
MIN_INTERACTIONS_PER_TRAINING_USER = 2
# Epoch seconds stay below 1e11 until the year 5138; anything larger is almost surely milliseconds.
MILLISECONDS_THRESHOLD = 100_000_000_000

# Every datasetType CreateDataset accepts (ACTIONS and ACTION_INTERACTIONS serve the next-best-action
# recipe only).
DATASET_TYPES = ("INTERACTIONS", "ITEMS", "USERS", "ACTIONS", "ACTION_INTERACTIONS")
# The dataset types of item recommenders: the ones these rules, the pipeline and the local service cover.
CORE_DATASET_TYPES = ("INTERACTIONS", "ITEMS", "USERS")
REQUIRED_FIELDS = {
    "INTERACTIONS": ("USER_ID", "ITEM_ID", "TIMESTAMP"),
    "ITEMS": ("ITEM_ID",),
    "USERS": ("USER_ID",),
}
ID_FIELDS = frozenset({"USER_ID", "ITEM_ID"})
# The fields that identify one record; two records with equal values in all of them are duplicates.
RECORD_KEY_FIELDS = {
    "INTERACTIONS": ("USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE"),
    "ITEMS": ("ITEM_ID",),
    "USERS": ("USER_ID",),
}
# Avro types Personalize accepts in a schema, and which of them parse as numbers.
AVRO_TYPES = frozenset({"string", "int", "long", "float", "double", "boolean"})
INTEGER_TYPES = frozenset({"int", "long"})
FLOAT_TYPES = frozenset({"float", "double"})


class SchemaError(ValueError):
    """A schema that Personalize would refuse."""


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    nullable: bool = False
    categorical: bool = False

    def to_avro(self) -> dict:
        avro: dict = {"name": self.name, "type": ["null", self.type] if self.nullable else self.type}
        if self.categorical:
            avro["categorical"] = True
        return avro


@dataclass(frozen=True)
class DatasetSchema:
    """One dataset's fields, convertible to and from the Avro JSON Personalize stores."""

    dataset_type: str
    fields: tuple[Field, ...]
    name: str = "Interactions"

    def __post_init__(self) -> None:
        if self.dataset_type not in CORE_DATASET_TYPES:
            raise SchemaError(f"dataset type {self.dataset_type!r} is not one of {CORE_DATASET_TYPES}")
        names = [f.name for f in self.fields]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise SchemaError(f"{self.dataset_type} schema names fields more than once: {duplicated}")
        missing = [n for n in REQUIRED_FIELDS[self.dataset_type] if n not in names]
        if missing:
            raise SchemaError(f"{self.dataset_type} schema lacks required fields {missing}")
        for f in self.fields:
            if f.type not in AVRO_TYPES:
                raise SchemaError(f"field {f.name}: type {f.type!r} is not one of {sorted(AVRO_TYPES)}")
            if f.categorical and f.type != "string":
                raise SchemaError(f"field {f.name}: only string fields can be categorical")

    @property
    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]

    def to_avro(self) -> str:
        return json.dumps(
            {
                "type": "record",
                "name": self.name,
                "namespace": "com.amazonaws.personalize.schema",
                "fields": [f.to_avro() for f in self.fields],
                "version": "1.0",
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_avro(cls, dataset_type: str, avro_json: str) -> DatasetSchema:
        try:
            doc = json.loads(avro_json)
        except json.JSONDecodeError as err:
            raise SchemaError(f"schema is not valid JSON: {err}") from err
        if (
            not isinstance(doc, dict)
            or doc.get("type") != "record"
            or not isinstance(doc.get("fields"), list)
        ):
            raise SchemaError("schema must be an Avro record with a 'fields' list")
        fields = []
        for raw in doc["fields"]:
            name, avro_type = raw.get("name"), raw.get("type")
            nullable = isinstance(avro_type, list) and "null" in avro_type
            if isinstance(avro_type, list):
                others = [t for t in avro_type if t != "null"]
                if len(others) != 1:
                    raise SchemaError(f"field {name}: union {avro_type} must be one type and null")
                avro_type = others[0]
            fields.append(Field(name, avro_type, nullable, bool(raw.get("categorical", False))))
        return cls(dataset_type, tuple(fields), doc.get("name", dataset_type.title()))

    def check_header(self, header: Sequence[str]) -> list[str]:
        """Problems with a CSV header against this schema; empty when it matches."""
        problems = []
        missing = [n for n in self.field_names if n not in header and not self._field(n).nullable]
        if missing:
            problems.append(f"header lacks required columns {missing}")
        unknown = [h for h in header if h not in self.field_names]
        if unknown:
            problems.append(f"header has columns not in the schema {unknown}")
        if len(set(header)) != len(header):
            problems.append("header repeats a column")
        return problems

    def check_record(self, record: Mapping[str, str | None]) -> Violation | None:
        """The first rule a record breaks, or None. Values are CSV text (None or '' for empty)."""
        for f in self.fields:
            violation = check_value(f, record.get(f.name))
            if violation:
                return violation
        return None

    def check_values(self, values: Sequence[str | None]) -> Violation | None:
        """Like `check_record`, for values in field order (a CSV row); faster on hot paths."""
        if len(values) != len(self.fields):
            return Violation(
                "*", "wrong_column_count", f"{len(values)} values for {len(self.fields)} schema fields"
            )
        for f, value in zip(self.fields, values, strict=True):
            violation = check_value(f, value)
            if violation:
                return violation
        return None

    def csv_line_pattern(self) -> re.Pattern[bytes]:
        """A fast, conservative test for one UTF-8 CSV line (ending in \\n) of this schema's fields.

        A line it matches has only unquoted values, and those values pass `check_values`: so it is
        valid as it stands, and a CSV writer would write exactly these bytes for it. Lines it does
        not match (quoted values, empty or odd values, long non-ASCII text) prove nothing and must go
        through `check_values`. Group i+1 is field i's value (None when an optional field is empty).
        """
        return re.compile(b",".join(b"(%s)%s" % pair for pair in self.csv_value_patterns()) + b"\n")

    def csv_value_patterns(self) -> list[tuple[bytes, bytes]]:
        """Per field, (regex for an unquoted value that passes `check_value`, b"?" if it may be empty).

        Limits count bytes, which are never fewer than characters, so they only ever err strict.
        """
        patterns = []
        for f in self.fields:
            pattern = _FAST_VALUE_PATTERNS.get(f.type, _PLAIN + b"+")
            if f.name in ID_FIELDS:
                pattern = _PLAIN + b"{1,%d}" % MAX_ID_LENGTH
            elif f.name == "TIMESTAMP" and f.type in INTEGER_TYPES:
                # Non-negative and below MILLISECONDS_THRESHOLD (1e11): at most 11 digits.
                pattern = b"[0-9]{1,%d}" % (len(str(MILLISECONDS_THRESHOLD)) - 1)
            elif f.categorical:
                part = _PLAIN_NOT_SEPARATOR + b"{0,%d}" % MAX_CATEGORICAL_LENGTH
                pattern = rb"(?=[^,\r\n])(?:%s\|)*%s" % (part, part)
            patterns.append((pattern, b"?" if f.nullable else b""))
        return patterns

    @property
    def key_fields(self) -> tuple[str, ...]:
        """The fields that identify a record here (see RECORD_KEY_FIELDS)."""
        return tuple(n for n in RECORD_KEY_FIELDS[self.dataset_type] if n in self.field_names)

    def _field(self, name: str) -> Field:
        return next(f for f in self.fields if f.name == name)


# Building blocks of `DatasetSchema.csv_line_pattern`: a byte that needs no CSV quoting and is no
# line break; number shapes that int()/float() read as finite values within the rules' limits.
_PLAIN = b'[^,"\\r\\n]'
_PLAIN_NOT_SEPARATOR = b'[^,"\\r\\n|]'
_FAST_VALUE_PATTERNS = {
    "int": b"-?[0-9]{1,18}",
    "long": b"-?[0-9]{1,18}",
    # At most 1e20 * 10**99: always finite.
    "float": b"-?[0-9]{1,20}(?:\\.[0-9]{1,20})?(?:[eE][-+]?[0-9]{1,2})?",
    "double": b"-?[0-9]{1,20}(?:\\.[0-9]{1,20})?(?:[eE][-+]?[0-9]{1,2})?",
    "boolean": b"(?:[Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee])",
}


@dataclass(frozen=True)
class Violation:
    """A broken rule. `code` groups counts (quarantine totals); `message` is for people."""

    field: str
    code: str
    message: str = field(compare=False)

    @property
    def reason(self) -> str:
        return f"{self.field}: {self.message}"


def _python_only_number(value: str) -> bool:
    """int() and float() also read digit-group underscores and non-ASCII digits, which neither
    Personalize nor the local service's training (pandas) accept."""
    return "_" in value or not value.isascii()


def check_value(f: Field, value: str | None) -> Violation | None:
    if value is None or value == "":
        if f.nullable:
            return None
        return Violation(f.name, "missing_value", "required value is empty")
    if "\n" in value or "\r" in value:
        return Violation(
            f.name, "line_break", "contains a line break (Personalize wants one record per line)"
        )
    if f.name in ID_FIELDS and len(value) > MAX_ID_LENGTH:
        return Violation(f.name, "too_long", f"{len(value)} characters, the limit is {MAX_ID_LENGTH}")
    if f.type in INTEGER_TYPES:
        try:
            if _python_only_number(value):
                raise ValueError(value)
            number = int(value)
        except ValueError:
            return Violation(f.name, "not_an_integer", f"{value[:40]!r} is not an integer")
        if f.name == "TIMESTAMP":
            if number < 0:
                return Violation(f.name, "negative_timestamp", f"{number} is before 1970")
            if number >= MILLISECONDS_THRESHOLD:
                return Violation(
                    f.name,
                    "timestamp_in_milliseconds",
                    f"{number} looks like milliseconds, not epoch seconds",
                )
    elif f.type in FLOAT_TYPES:
        try:
            if _python_only_number(value):
                raise ValueError(value)
            number = float(value)
        except ValueError:
            return Violation(f.name, "not_a_number", f"{value[:40]!r} is not a number")
        if not math.isfinite(number):
            return Violation(f.name, "not_a_number", f"{value!r} is not a finite number")
    elif f.type == "boolean":
        if value.lower() not in ("true", "false"):
            return Violation(f.name, "not_a_boolean", f"{value[:40]!r} is not true or false")
    elif f.categorical:
        for part in value.split(CATEGORICAL_SEPARATOR):
            if len(part) > MAX_CATEGORICAL_LENGTH:
                return Violation(
                    f.name,
                    "too_long",
                    f"a categorical value has {len(part)} characters, the limit is {MAX_CATEGORICAL_LENGTH}",
                )
    return None


def duplicate(key_fields: Sequence[str]) -> Violation:
    """The violation for a record whose key repeats an earlier record's (Personalize keeps only one)."""
    return Violation("+".join(key_fields), "duplicate", f"same {', '.join(key_fields)} as an earlier record")


def join_categorical(values: Sequence[str]) -> str:
    """Several categorical values in one field, as Personalize reads them."""
    return CATEGORICAL_SEPARATOR.join(v.replace(CATEGORICAL_SEPARATOR, " ") for v in values)


def training_shortfall(interaction_user_ids: Sequence[str]) -> str | None:
    """Personalize's message when interactions are below the training minimums, else None."""
    total = len(interaction_user_ids)
    counts: dict[str, int] = {}
    for user in interaction_user_ids:
        counts[user] = counts.get(user, 0) + 1
    active_users = sum(1 for c in counts.values() if c >= MIN_INTERACTIONS_PER_TRAINING_USER)
    if total < MIN_TRAINING_INTERACTIONS or active_users < MIN_TRAINING_USERS:
        return (
            f"Insufficient data for training: there must be at least {MIN_TRAINING_INTERACTIONS} interactions "
            f"and {MIN_TRAINING_USERS} unique users with at least {MIN_INTERACTIONS_PER_TRAINING_USER} "
            f"interactions each; found {total} interactions and {active_users} such users."
        )
    return None
