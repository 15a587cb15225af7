import pandas as pd
import pytest

from include.local_personalize.filters import parse_filter_expression, parse_filter_values

ITEMS = pd.DataFrame(
    {
        "ITEM_ID": ["shoe-1", "shoe-2", "hat-1", "bag-1", "misc-1"],
        "CATEGORY": ["shoes", "shoes|sale", "hats|sale", "bags", None],
        "PRICE": [49.0, 9.5, 10.0, 120.0, None],
        "GENRE": ["sport", "casual", "casual", "casual", "sport"],
    }
)
INTERACTIONS = pd.DataFrame(
    {
        "ITEM_ID": ["shoe-1", "hat-1", "bag-1", "shoe-1"],
        "EVENT_TYPE": ["click", "Purchase", "favorite", "view"],
        "EVENT_VALUE": [1.0, 5.0, 3.0, None],
    }
)


def apply(expression, *, values=None, user=None, items=ITEMS, interactions=INTERACTIONS, current_item=None):
    return parse_filter_expression(expression).apply(
        user_interactions=interactions, items=items, user=user, values=values, current_item=current_item
    )


# --- parsing ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expression",
    [
        'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click", "stream")',
        'INCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("*")',
        "EXCLUDE ItemID WHERE Items.CATEGORY IN ($CATEGORY)",
        'EXCLUDE ItemID WHERE Items.CATEGORY_L1 IN ("shoe") AND Items.CATEGORY_L2 NOT IN ("boot")',
        "INCLUDE ItemID WHERE Items.PRICE <= $PRICE",
        "INCLUDE ItemID WHERE Items.NUMBER_OF_DOWNLOADS < 20",
        "EXCLUDE ItemID WHERE Items.NUMBER_OF_DOWNLOADS < 20 IF CurrentUser.AGE > 18 AND CurrentUser.AGE < 30",
        "EXCLUDE ItemID WHERE Items.GENRE IN ($GENRE) IF CurrentUser.AGE = $AGE",
        "INCLUDE ItemID WHERE Items.PRICE < CurrentItem.PRICE AND Items.GENRE IN CurrentItem.GENRE",
        'INCLUDE ItemID WHERE Items.GENRE IN ("drama") | EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click")',
        'EXCLUDE itemId WHERE INTERACTIONS.EVENT_TYPE in ("Purchase")',
        'include ItemID where Items.A IN ("x") or Items.B >= -1.5 and Items.C != 3',
    ],
)
def test_documented_expressions_parse(expression):
    assert parse_filter_expression(expression).expression == expression


def test_placeholders_and_referenced_fields_are_reported():
    parsed = parse_filter_expression(
        "INCLUDE ItemID WHERE Items.CATEGORY IN ($CATEGORY) AND Items.PRICE < CurrentItem.PRICE "
        "IF CurrentUser.AGE > $AGE | EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ($EVENT_TYPE)"
    )
    assert parsed.placeholders == {"CATEGORY", "AGE", "EVENT_TYPE"}
    assert parsed.referenced_fields == {
        "Items": {"CATEGORY", "PRICE"},
        "CurrentItem": {"PRICE"},
        "CurrentUser": {"AGE"},
        "Interactions": {"EVENT_TYPE"},
    }
    assert parsed.uses_current_item
    assert not parse_filter_expression('EXCLUDE ItemID WHERE Items.A IN ("x")').uses_current_item


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("", "empty"),
        ('FILTER ItemID WHERE Items.A IN ("x")', "expected INCLUDE or EXCLUDE at position 1, found 'FILTER'"),
        ('EXCLUDE ItemID Items.A IN ("x")', "expected WHERE at position 16, found 'Items'"),
        ('EXCLUDE UserID WHERE Users.A IN ("x")', "only item filters"),
        ('EXCLUDE ItemID WHERE Items.A LIKE ("x")', "expected IN, NOT IN or a comparison operator"),
        ('EXCLUDE ItemID WHERE Items.A NOT ("x")', "expected IN after NOT at position 34"),
        ('EXCLUDE ItemID WHERE Items.A IN ("x"', "expected ',' or ')' in the value list at position 37"),
        ('EXCLUDE ItemID WHERE Items.A IN ("x)', "unexpected character '\"' at position 34 (unterminated"),
        ("EXCLUDE ItemID WHERE Items.A IN ()", "expected a quoted value"),
        ('EXCLUDE ItemID WHERE Items.A IN ("x", $P)', "placeholder $P at position 39 must be the only"),
        ('EXCLUDE ItemID WHERE Items.PRICE < "10"', "< at position 34 compares numbers"),
        ("EXCLUDE ItemID WHERE Items.PRICE <", "expected a number, $PARAMETER or CurrentItem.FIELD after <"),
        ('EXCLUDE ItemID WHERE Products.A IN ("x")', "unknown dataset 'Products' at position 22"),
        ('EXCLUDE ItemID WHERE Users.A IN ("x")', "Users at position 22"),
        ('EXCLUDE ItemID WHERE Items IN ("x")', "expected '.' after Items at position 28"),
        (
            'EXCLUDE ItemID WHERE Items.A IN ("x") AND Interactions.EVENT_TYPE IN ("click")',
            "Interactions at position 43: conditions chained with AND/OR must all use Items",
        ),
        ("EXCLUDE ItemID WHERE CurrentUser.AGE > 3", "CurrentUser can only be tested in an IF condition"),
        ('EXCLUDE ItemID WHERE Items.A IN ("x") IF Items.B > 3', "IF conditions can only test CurrentUser"),
        (
            'EXCLUDE ItemID WHERE Items.A IN ("x") IF CurrentUser.A > 3 OR CurrentUser.B > 1',
            "OR at position 60: an IF condition can only be extended with AND",
        ),
        (
            'EXCLUDE ItemID WHERE Items.A IN ("*")',
            '"*" at position 34 is only allowed for Interactions.EVENT_TYPE',
        ),
        ('EXCLUDE ItemID WHERE CurrentItem.A IN ("x")', "CurrentItem can only be the value"),
        (
            'EXCLUDE ItemID WHERE Items.A IN ("x") |',
            "expected INCLUDE or EXCLUDE at position 40, found the end",
        ),
        ('EXCLUDE ItemID WHERE Items.A IN ("x") Items.B', "expected AND, OR, IF, '|' or the end"),
        ('EXCLUDE ItemID WHERE Items.A IN ("x") ; DROP', "unexpected character ';' at position 39"),
    ],
)
def test_bad_expressions_name_the_problem(expression, message):
    with pytest.raises(ValueError) as raised:
        parse_filter_expression(expression)
    assert message in str(raised.value)


# --- filter values ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('"shoes","hats"', ("shoes", "hats")),
        ('"shoes", "hats"', ("shoes", "hats")),
        ('"drama"', ("drama",)),
        ("10", ("10",)),
        ('"a, b","c"', ("a, b", "c")),
        ('"say \\"hi\\""', ('say "hi"',)),
        ("", ()),
    ],
)
def test_filter_values_are_read_as_getrecommendations_sends_them(raw, expected):
    assert parse_filter_values("P", raw) == expected


# --- items ----------------------------------------------------------------------------------------


def test_include_items_in_literal_list():
    assert apply('INCLUDE ItemID WHERE Items.GENRE IN ("sport")') == (
        frozenset({"shoe-1", "misc-1"}),
        frozenset(),
    )


def test_exclude_items_in_literal_list():
    assert apply('EXCLUDE ItemID WHERE Items.GENRE IN ("sport")') == (None, frozenset({"shoe-1", "misc-1"}))


def test_categorical_value_matches_any_of_its_parts():
    allowed, _ = apply('INCLUDE ItemID WHERE Items.CATEGORY IN ("sale")')
    assert allowed == {"shoe-2", "hat-1"}


def test_item_strings_match_exactly_and_case_sensitively():
    allowed, _ = apply('INCLUDE ItemID WHERE Items.CATEGORY IN ("Shoes", "sal")')
    assert allowed == frozenset()


def test_not_in_keeps_items_with_none_of_the_values_including_missing_ones():
    allowed, _ = apply('INCLUDE ItemID WHERE Items.CATEGORY NOT IN ("shoes", "hats")')
    assert allowed == {"bag-1", "misc-1"}


@pytest.mark.parametrize(
    ("operator", "expected"),
    [
        ("=", {"hat-1"}),
        ("!=", {"shoe-1", "shoe-2", "bag-1"}),
        ("<", {"shoe-2"}),
        ("<=", {"shoe-2", "hat-1"}),
        (">", {"shoe-1", "bag-1"}),
        (">=", {"shoe-1", "hat-1", "bag-1"}),
    ],
)
def test_numeric_comparisons_leave_out_items_without_a_value(operator, expected):
    allowed, _ = apply(f"INCLUDE ItemID WHERE Items.PRICE {operator} 10")
    assert allowed == expected


def test_numeric_comparison_on_text_column_of_numbers():
    items = ITEMS.assign(PRICE=["49", "9.5", "10", "120", ""])
    allowed, _ = apply("INCLUDE ItemID WHERE Items.PRICE < 10", items=items)
    assert allowed == {"shoe-2"}


def test_and_binds_tighter_than_or():
    allowed, _ = apply(
        'INCLUDE ItemID WHERE Items.GENRE IN ("sport") OR Items.GENRE IN ("casual") AND Items.PRICE > 100'
    )
    assert allowed == {"shoe-1", "misc-1", "bag-1"}


def test_and_chain_narrows():
    allowed, _ = apply('INCLUDE ItemID WHERE Items.CATEGORY IN ("sale") AND Items.PRICE < 10')
    assert allowed == {"shoe-2"}


def test_field_names_resolve_case_insensitively():
    allowed, _ = apply('INCLUDE ItemID WHERE items.genre IN ("sport")')
    assert allowed == {"shoe-1", "misc-1"}


def test_unknown_item_field_is_an_error_naming_it():
    with pytest.raises(ValueError, match=r"Items\.COLOUR, but the Items dataset has no such field"):
        apply('INCLUDE ItemID WHERE Items.COLOUR IN ("red")')


def test_items_filter_without_items_dataset_is_an_error():
    with pytest.raises(ValueError, match="needs the Items dataset"):
        apply('INCLUDE ItemID WHERE Items.GENRE IN ("sport")', items=None)


def test_in_on_numeric_column_compares_numbers():
    items = ITEMS.assign(YEAR=[2020, 2021, 2020, 1999, 2021])
    allowed, _ = apply('INCLUDE ItemID WHERE Items.YEAR IN ("2020", "1999.0", "x")', items=items)
    assert allowed == {"shoe-1", "hat-1", "bag-1"}


# --- placeholders ----------------------------------------------------------------------------------


def test_placeholder_values_fill_the_in_list():
    allowed, _ = apply(
        "INCLUDE ItemID WHERE Items.CATEGORY IN ($CATEGORY)", values={"CATEGORY": '"bags","hats"'}
    )
    assert allowed == {"bag-1", "hat-1"}


def test_placeholder_number_in_comparison():
    allowed, _ = apply("INCLUDE ItemID WHERE Items.PRICE <= $PRICE", values={"PRICE": '"10"'})
    assert allowed == {"shoe-2", "hat-1"}


def test_placeholder_results_change_with_values_despite_the_cache():
    parsed = parse_filter_expression("INCLUDE ItemID WHERE Items.CATEGORY IN ($CATEGORY)")

    def allowed_for(raw):
        return parsed.apply(user_interactions=None, items=ITEMS, user=None, values={"CATEGORY": raw})[0]

    assert allowed_for('"shoes"') == {"shoe-1", "shoe-2"}
    assert allowed_for('"bags"') == {"bag-1"}
    assert allowed_for('"shoes"') == {"shoe-1", "shoe-2"}


def test_new_items_frame_is_seen_by_a_cached_filter():
    parsed = parse_filter_expression('INCLUDE ItemID WHERE Items.CATEGORY IN ("bags")')
    first = parsed.apply(user_interactions=None, items=ITEMS, user=None, values=None)[0]
    more_items = pd.concat(
        [ITEMS, pd.DataFrame({"ITEM_ID": ["bag-2"], "CATEGORY": ["bags"]})], ignore_index=True
    )
    second = parsed.apply(user_interactions=None, items=more_items, user=None, values=None)[0]
    assert first == {"bag-1"}
    assert second == {"bag-1", "bag-2"}


def test_missing_placeholder_in_include_is_an_error_naming_it():
    with pytest.raises(ValueError, match=r"no value for \$CATEGORY"):
        apply("INCLUDE ItemID WHERE Items.CATEGORY IN ($CATEGORY)", values={"OTHER": '"x"'})


def test_missing_placeholder_in_exclude_leaves_that_expression_out():
    result = apply(
        "EXCLUDE ItemID WHERE Items.CATEGORY IN ($CATEGORY) | "
        'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click")',
        values=None,
    )
    assert result == (None, frozenset({"shoe-1"}))


def test_placeholder_names_match_case():
    with pytest.raises(ValueError, match=r"\$CATEGORY"):
        apply("INCLUDE ItemID WHERE Items.CATEGORY IN ($CATEGORY)", values={"category": '"bags"'})


@pytest.mark.parametrize(("raw", "message"), [('"ten"', "'ten' is not a number"), ('"1","2"', "exactly one")])
def test_bad_numeric_placeholder_value_names_the_placeholder(raw, message):
    with pytest.raises(ValueError, match=rf"filterValues\[PRICE\].*{message}"):
        apply("INCLUDE ItemID WHERE Items.PRICE < $PRICE", values={"PRICE": raw})


# --- interactions ---------------------------------------------------------------------------------


def test_exclude_items_the_user_interacted_with_by_event_type():
    assert apply('EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click", "purchase")') == (
        None,
        frozenset({"shoe-1", "hat-1"}),
    )


def test_include_only_items_with_an_event_type():
    assert apply('INCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("favorite")') == (
        frozenset({"bag-1"}),
        frozenset(),
    )


def test_star_matches_every_interaction():
    allowed, _ = apply('INCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("*")')
    assert allowed == {"shoe-1", "hat-1", "bag-1"}


def test_interactions_not_in_is_per_interaction():
    # shoe-1 has a click and a view: the view row is not a click, so shoe-1 is excluded too.
    _, excluded = apply('EXCLUDE ItemID WHERE Interactions.EVENT_TYPE NOT IN ("click")')
    assert excluded == {"shoe-1", "hat-1", "bag-1"}


def test_interaction_conditions_hold_on_the_same_row():
    _, excluded = apply(
        'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click") AND Interactions.EVENT_VALUE > 2'
    )
    assert excluded == frozenset()
    _, excluded = apply(
        'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase") AND Interactions.EVENT_VALUE > 2'
    )
    assert excluded == {"hat-1"}


def test_event_type_placeholder():
    _, excluded = apply(
        "EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ($EVENT_TYPE)", values={"EVENT_TYPE": '"favorite"'}
    )
    assert excluded == {"bag-1"}


def test_user_without_interactions():
    assert apply('INCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("*")', interactions=None) == (
        frozenset(),
        frozenset(),
    )
    empty = INTERACTIONS.iloc[0:0]
    assert apply('EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("*")', interactions=empty) == (
        None,
        frozenset(),
    )


# --- combining expressions ---------------------------------------------------------------------------


def test_include_and_exclude_are_returned_separately():
    allowed, excluded = apply(
        'INCLUDE ItemID WHERE Items.GENRE IN ($GENRE) | EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click")',
        values={"GENRE": '"sport"'},
    )
    assert allowed == {"shoe-1", "misc-1"}
    assert excluded == {"shoe-1"}


def test_includes_unite_and_excludes_unite():
    allowed, excluded = apply(
        'INCLUDE ItemID WHERE Items.CATEGORY IN ("bags") | INCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click") '
        '| EXCLUDE ItemID WHERE Items.PRICE > 100 | EXCLUDE ItemID WHERE Items.GENRE IN ("sport")'
    )
    assert allowed == {"bag-1", "shoe-1"}
    assert excluded == {"bag-1", "shoe-1", "misc-1"}


# --- CurrentUser and CurrentItem ----------------------------------------------------------------------


def test_if_condition_applies_the_expression_only_for_matching_users():
    expression = "EXCLUDE ItemID WHERE Items.PRICE < 20 IF CurrentUser.AGE > 18 AND CurrentUser.AGE < 30"
    assert apply(expression, user={"AGE": "25"}) == (None, frozenset({"shoe-2", "hat-1"}))
    assert apply(expression, user={"AGE": "40"}) == (None, frozenset())
    assert apply(expression, user={"TIER": "gold"}) == (None, frozenset())
    assert apply(expression, user=None) == (None, frozenset())


def test_if_condition_with_categorical_user_field_and_placeholder():
    expression = 'INCLUDE ItemID WHERE Items.GENRE IN ("casual") IF CurrentUser.TIER IN ($TIER)'
    assert apply(expression, user={"TIER": "silver|gold"}, values={"TIER": '"gold"'})[0] == {
        "shoe-2",
        "hat-1",
        "bag-1",
    }
    assert apply(expression, user={"TIER": "bronze"}, values={"TIER": '"gold"'})[0] is None


def test_current_item_fields_are_compared_with_items():
    expression = "INCLUDE ItemID WHERE Items.PRICE < CurrentItem.PRICE AND Items.GENRE IN CurrentItem.GENRE"
    allowed, _ = apply(expression, current_item={"PRICE": "50", "GENRE": "casual"})
    assert allowed == {"shoe-2", "hat-1"}
    allowed, _ = apply(expression, current_item={"PRICE": "50", "GENRE": "sport"})
    assert allowed == {"shoe-1"}


def test_current_item_needs_an_item():
    with pytest.raises(ValueError, match=r"CurrentItem\.PRICE, which needs an itemId"):
        apply("INCLUDE ItemID WHERE Items.PRICE < CurrentItem.PRICE")


def test_items_frame_with_any_index_maps_rows_to_the_right_items():
    items = ITEMS.set_index(pd.Index(["x", "x", "y", "z", "z"]))
    allowed, _ = apply('INCLUDE ItemID WHERE Items.CATEGORY IN ("sale")', items=items)
    assert allowed == {"shoe-2", "hat-1"}


def test_single_in_condition_agrees_with_the_general_evaluation():
    import numpy as np

    rng = np.random.default_rng(3)
    tags = [f"t{i}" for i in range(8)]
    items = pd.DataFrame(
        {
            "ITEM_ID": [f"i{i}" for i in range(300)],
            "TAGS": ["|".join(rng.choice(tags, rng.integers(1, 4), replace=False)) for _ in range(300)],
        }
    )
    items.loc[::17, "TAGS"] = None
    for wanted in (["t1"], ["t2", "t5"], ["t0", "t3", "t7", "nope"]):
        values = {"TAGS": ",".join(f'"{tag}"' for tag in wanted)}
        fast, _ = apply("INCLUDE ItemID WHERE Items.TAGS IN ($TAGS)", items=items, values=values)
        general, _ = apply(
            'INCLUDE ItemID WHERE Items.TAGS IN ($TAGS) OR Items.ITEM_ID IN ("none")',
            items=items,
            values=values,
        )
        expected = {
            item_id
            for item_id, tag_text in zip(items["ITEM_ID"], items["TAGS"], strict=True)
            if isinstance(tag_text, str) and set(tag_text.split("|")) & set(wanted)
        }
        assert fast == general == expected


def test_same_values_give_back_the_same_set_object():
    parsed = parse_filter_expression("INCLUDE ItemID WHERE Items.CATEGORY IN ($CATEGORY)")
    first = parsed.apply(user_interactions=None, items=ITEMS, user=None, values={"CATEGORY": '"sale"'})[0]
    parsed.apply(user_interactions=None, items=ITEMS, user=None, values={"CATEGORY": '"bags"'})
    again = parsed.apply(user_interactions=None, items=ITEMS, user=None, values={"CATEGORY": '"sale"'})[0]
    assert again is first
