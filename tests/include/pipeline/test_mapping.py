from __future__ import annotations

import json

import pytest

from include.pipeline.extract_sql import POSTGRES, SQLITE, build_query
from include.pipeline.mapping import (
    DEMO_INTERACTIONS,
    DEMO_ITEMS,
    DEMO_USERS,
    DatasetMapping,
    FieldMapping,
    MappingError,
    schema_for,
)

COLUMNS = {"USER_ID": "user_id", "ITEM_ID": "item_id", "TIMESTAMP": "occurred_at"}


@pytest.mark.parametrize(
    ("table", "columns", "message"),
    [
        ("events; DROP TABLE users", COLUMNS, "table name part"),
        ('events"--', COLUMNS, "table name part"),
        ("a.b.c", COLUMNS, "schema.table"),
        ("events", {**COLUMNS, "ITEM_ID": "item_id) UNION SELECT"}, "column for ITEM_ID"),
        ("events", {**COLUMNS, "EVENT_TYPE": "1type"}, "column for EVENT_TYPE"),
        ("events", {**COLUMNS, "BAD NAME": "x"}, "valid Avro name"),
    ],
)
def test_identifiers_from_config_are_validated(table, columns, message):
    with pytest.raises(MappingError, match=message):
        DatasetMapping.from_columns("INTERACTIONS", table, columns)


def test_interval_column_rules():
    with pytest.raises(MappingError, match="time_column"):
        DatasetMapping("INTERACTIONS", "events", DEMO_INTERACTIONS.fields)
    with pytest.raises(MappingError, match="full snapshot"):
        DatasetMapping.from_columns("ITEMS", "items", {"ITEM_ID": "item_id"}, time_column="created_at")
    with pytest.raises(MappingError, match="epoch seconds need type long"):
        FieldMapping("TIMESTAMP", "occurred_at", "string", epoch_seconds=True)


def test_options_must_name_mapped_fields():
    with pytest.raises(MappingError, match="GENRE"):
        DatasetMapping.from_columns("ITEMS", "items", {"ITEM_ID": "item_id"}, categorical=["GENRE"])


def test_personalize_refusals_surface_at_mapping_time():
    with pytest.raises(ValueError, match="TIMESTAMP"):
        DatasetMapping.from_columns(
            "INTERACTIONS", "events", {"USER_ID": "u", "ITEM_ID": "i"}, time_column="t"
        )


def test_schema_comes_from_the_mapping_with_the_key_first():
    mapping = DatasetMapping.from_columns(
        "INTERACTIONS",
        "app.events",
        {"EVENT_VALUE": "v", "TIMESTAMP": "at", "USER_ID": "u", "EVENT_TYPE": "kind", "ITEM_ID": "i"},
    )
    schema = schema_for(mapping)
    assert schema.field_names == ["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE"]
    avro = json.loads(schema.to_avro())
    assert [f["name"] for f in avro["fields"]] == schema.field_names
    assert avro["fields"][2]["type"] == "long" and avro["fields"][4]["type"] == ["null", "float"]
    sql = build_query(mapping, POSTGRES)
    select = sql.split("\nFROM")[0]
    assert select.index('AS "USER_ID"') < select.index('AS "ITEM_ID"') < select.index('AS "EVENT_VALUE"')


def test_demo_mappings_match_the_agreed_app_db():
    assert schema_for(DEMO_ITEMS).field_names == ["ITEM_ID", "CATEGORY", "PRICE", "CREATION_TIMESTAMP"]
    assert schema_for(DEMO_USERS).field_names == ["USER_ID", "TIER", "REGION"]
    assert [f.categorical for f in schema_for(DEMO_ITEMS).fields] == [False, True, False, False]


@pytest.mark.parametrize(
    ("dialect", "start", "end"), [(POSTGRES, "%(start)s", "%(end)s"), (SQLITE, ":start", ":end")]
)
def test_interval_is_bound_and_identifiers_quoted(dialect, start, end):
    mapping = DatasetMapping(
        "INTERACTIONS", "app.events", DEMO_INTERACTIONS.fields, DEMO_INTERACTIONS.time_column
    )
    sql = build_query(mapping, dialect)
    assert f">= {start} AND" in sql and f"< {end}" in sql
    assert 'FROM "app"."events"' in sql
    assert "ORDER BY" in sql and "--" not in sql
