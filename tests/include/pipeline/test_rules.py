from __future__ import annotations

import pytest

from include.pipeline import rules
from include.pipeline.rules import DatasetSchema, Field, SchemaError

INTERACTIONS = DatasetSchema(
    "INTERACTIONS",
    (
        Field("USER_ID", "string"),
        Field("ITEM_ID", "string"),
        Field("TIMESTAMP", "long"),
        Field("EVENT_TYPE", "string"),
        Field("EVENT_VALUE", "float", nullable=True),
    ),
)
GOOD = {"USER_ID": "u1", "ITEM_ID": 'i,1 "quoted" é', "TIMESTAMP": "1700000000", "EVENT_TYPE": "click"}


def test_good_record_passes():
    assert INTERACTIONS.check_record(GOOD) is None
    assert INTERACTIONS.check_record({**GOOD, "EVENT_VALUE": "2.5"}) is None


@pytest.mark.parametrize(
    ("change", "field", "code"),
    [
        ({"USER_ID": ""}, "USER_ID", "missing_value"),
        ({"ITEM_ID": None}, "ITEM_ID", "missing_value"),
        ({"ITEM_ID": "x" * 257}, "ITEM_ID", "too_long"),
        ({"USER_ID": "a\nb"}, "USER_ID", "line_break"),
        ({"TIMESTAMP": "1700000000000"}, "TIMESTAMP", "timestamp_in_milliseconds"),
        ({"TIMESTAMP": "-5"}, "TIMESTAMP", "negative_timestamp"),
        ({"TIMESTAMP": "2023-01-01"}, "TIMESTAMP", "not_an_integer"),
        ({"EVENT_TYPE": ""}, "EVENT_TYPE", "missing_value"),
        ({"EVENT_VALUE": "abc"}, "EVENT_VALUE", "not_a_number"),
        ({"EVENT_VALUE": "nan"}, "EVENT_VALUE", "not_a_number"),
    ],
)
def test_each_rule_names_field_and_code(change, field, code):
    violation = INTERACTIONS.check_record({**GOOD, **change})
    assert violation is not None
    assert (violation.field, violation.code) == (field, code)
    assert violation.reason.startswith(field)


def test_id_of_exactly_256_characters_is_allowed():
    assert INTERACTIONS.check_record({**GOOD, "ITEM_ID": "x" * 256}) is None


def test_avro_round_trip_keeps_nullability_and_categorical():
    schema = DatasetSchema(
        "ITEMS", (Field("ITEM_ID", "string"), Field("GENRES", "string", nullable=True, categorical=True))
    )
    again = DatasetSchema.from_avro("ITEMS", schema.to_avro())
    assert again.fields == schema.fields


def test_schema_without_required_field_is_refused():
    with pytest.raises(SchemaError, match="TIMESTAMP"):
        DatasetSchema("INTERACTIONS", (Field("USER_ID", "string"), Field("ITEM_ID", "string")))


def test_header_check_names_missing_and_unknown_columns():
    problems = INTERACTIONS.check_header(["USER_ID", "ITEM_ID", "WHEN"])
    assert any("TIMESTAMP" in p for p in problems)
    assert any("WHEN" in p for p in problems)
    assert INTERACTIONS.check_header(["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE"]) == []


def test_training_shortfall_uses_personalize_minimums():
    few_users = [f"u{i % 10}" for i in range(2000)]
    assert "Insufficient data" in rules.training_shortfall(few_users)
    enough = [f"u{i % 30}" for i in range(1000)]
    assert rules.training_shortfall(enough) is None
    assert rules.training_shortfall(enough[:999]) is not None
