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
        # Python's int() and float() read these; Personalize (and pandas, when the data is trained) do not.
        ({"TIMESTAMP": "1_700_000_000"}, "TIMESTAMP", "not_an_integer"),
        ({"TIMESTAMP": "\u0661\u0667\u0660\u0660"}, "TIMESTAMP", "not_an_integer"),
        ({"EVENT_VALUE": "2_5"}, "EVENT_VALUE", "not_a_number"),
        ({"EVENT_VALUE": "\u0662.5"}, "EVENT_VALUE", "not_a_number"),
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


def _random_value(rng, field: Field) -> str:
    kind = rng.random()
    if field.type in ("long", "int", "float") and kind < 0.85:
        number = rng.choice([0, 7, -3, 1700000000, 99999999999, 100000000000, 2.5, -0.125, 1e20, 1e-7])
        text = repr(number) if rng.random() < 0.5 else str(number)
        return rng.choice([text, text + "0", "-" + text, text.replace(".", "e"), f"{text}e99", f"{text}e400"])
    alphabet = 'ab,"\n\r|é -.e0123456789nNaI'
    if kind < 0.75:
        alphabet = "abcxyz019_-|é"
    length = rng.choice([0, 1, 2, 5, 5, 40, 40, 128, 129, 255, 256, 257, 300])
    return "".join(rng.choice(alphabet) for _ in range(length))


@pytest.mark.parametrize("seed", range(3))
def test_fast_line_pattern_only_vouches_for_valid_lines_the_csv_writer_would_write(seed):
    """Random rows, written properly and also glued with bare commas: whatever the fast pattern
    matches must parse to values that pass every rule and be exactly what csv.writer writes."""
    import csv
    import io
    import random

    rng = random.Random(seed)
    schema = DatasetSchema(
        "INTERACTIONS",
        (*INTERACTIONS.fields, Field("GENRES", "string", nullable=True, categorical=True)),
    )
    pattern = schema.csv_line_pattern()
    matched = 0
    for _ in range(3000):
        values = [_random_value(rng, f) for f in schema.fields]
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerow(values)
        for line in (buffer.getvalue(), ",".join(values) + "\n"):
            if pattern.fullmatch(line.encode()) is None:
                continue
            matched += 1
            parsed = next(csv.reader([line]))
            assert schema.check_values(parsed) is None, line
            again = io.StringIO()
            csv.writer(again, lineterminator="\n").writerow(parsed)
            assert again.getvalue() == line
    assert matched > 50  # the property was exercised, not skipped


def test_fast_line_pattern_accepts_typical_rows():
    pattern = INTERACTIONS.csv_line_pattern()
    assert pattern.fullmatch(b"u1,i-9,1700000000,click,\n")
    assert pattern.fullmatch(b"u1,i-9,1700000000,click,2.5\n")
    assert pattern.fullmatch("ü,é,1700000000,view,1e20\n".encode())
    assert not pattern.fullmatch(b'u1,"i,9",1700000000,click,\n')  # quoted: needs the slow path
    assert not pattern.fullmatch(b"u1,i9,1700000000000,click,\n")  # milliseconds
    assert not pattern.fullmatch(b"u1,,1700000000,click,\n")
