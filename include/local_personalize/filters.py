"""Amazon Personalize filter expressions: parsed once at CreateFilter, applied on every GetRecommendations.

The language (tokens, syntax tree, parser, filterValues) is Personalize's contract and lives in
`personalize_contract.filter_grammar`; this module evaluates the syntax tree over the service's data.
Event types match case-insensitively and "*" matches any; every other string matches exactly. A
categorical value holding several values joined with "|" matches IN when any of them is in the list.

Combining: INCLUDE results are united, EXCLUDE results are united, and the caller recommends only
the included items minus the excluded ones. An expression whose IF condition is false for the current
user does not apply. A placeholder missing from filterValues is an error in an INCLUDE expression;
an EXCLUDE expression with a missing placeholder is left out, as Personalize documents for
GetRecommendations' filterValues.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from personalize_contract.data_rules import CATEGORICAL_SEPARATOR
from personalize_contract.filter_grammar import (
    ANY_EVENT_TYPE,
    CURRENT_ITEM,
    EVENT_TYPE,
    INTERACTIONS,
    ITEM_ID,
    ITEMS,
    AllOf,
    AnyOf,
    Condition,
    CurrentItemField,
    Expression,
    Node,
    Number,
    Parser,
    Placeholder,
    Strings,
    conditions,
    parse_filter_values,
)

# Results of one expression for one set of filter values over one items table; enough for the
# handful of parameter combinations an app sends repeatedly.
_RESULT_CACHE_SIZE = 256


def _union(sets: list[frozenset[str]]) -> frozenset[str]:
    # One set is returned as it is: copying a large cached result on every request is the cost to avoid.
    if len(sets) == 1:
        return sets[0]
    return frozenset().union(*sets)


def _single_number(source: str, values: tuple[str, ...]) -> float:
    if len(values) != 1:
        raise ValueError(f"{source}: a comparison needs exactly one number, got {len(values)} values")
    try:
        return float(values[0])
    except ValueError:
        raise ValueError(f"{source}: {values[0]!r} is not a number") from None


def _split_categorical(value: object) -> frozenset[str]:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return frozenset()
    return frozenset(str(value).split(CATEGORICAL_SEPARATOR))


# --- column views: the same condition over an indexed items table or a user's few interactions ---


def _compare(values: np.ndarray, operator: str, number: float) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        if operator == "=":
            return values == number
        if operator == "!=":
            return ~np.isnan(values) & (values != number)
        if operator == "<":
            return values < number
        if operator == "<=":
            return values <= number
        if operator == ">":
            return values > number
        return values >= number


class _IndexedColumn:
    """One items column, prepared once: value -> row positions for IN, floats for comparisons."""

    def __init__(self, series: pd.Series):
        self.size = len(series)
        self.numeric_dtype = pd.api.types.is_numeric_dtype(series.dtype)
        self._series = series
        self._positions: dict[str, np.ndarray] | None = None
        self._numbers: np.ndarray | None = None

    @property
    def numbers(self) -> np.ndarray:
        if self._numbers is None:
            self._numbers = pd.to_numeric(self._series, errors="coerce").to_numpy(dtype=float)
        return self._numbers

    @property
    def positions(self) -> dict[str, np.ndarray]:
        if self._positions is None:
            present = self._series.notna().to_numpy()
            rows = np.flatnonzero(present)
            text = pd.Series(self._series.to_numpy(dtype=object)[present]).astype(str)
            exploded = text.str.split(CATEGORICAL_SEPARATOR, regex=False).explode()
            frame = pd.DataFrame({"value": exploded.to_numpy(), "row": rows[exploded.index.to_numpy()]})
            self._positions = {
                value: group.to_numpy() for value, group in frame.groupby("value", sort=False)["row"]
            }
        return self._positions

    def isin(self, values: frozenset[str], *, casefold: bool) -> np.ndarray:
        mask = np.zeros(self.size, dtype=bool)
        if self.numeric_dtype:
            numbers = [float(v) for v in values if _is_number(v)]
            return np.isin(self.numbers, numbers) if numbers else mask
        if casefold:
            wanted = {v.casefold() for v in values}
            values = frozenset(key for key in self.positions if key.casefold() in wanted)
        for value in values:
            rows = self.positions.get(value)
            if rows is not None:
                mask[rows] = True
        return mask


class _DirectColumn:
    """A column of a small frame (one user's interactions), evaluated row by row on each request."""

    def __init__(self, series: pd.Series):
        self.size = len(series)
        self._values = series.to_numpy(dtype=object)
        self.numeric_dtype = pd.api.types.is_numeric_dtype(series.dtype)
        self._series = series

    @property
    def numbers(self) -> np.ndarray:
        return pd.to_numeric(self._series, errors="coerce").to_numpy(dtype=float)

    def isin(self, values: frozenset[str], *, casefold: bool) -> np.ndarray:
        if self.numeric_dtype:
            numbers = [float(v) for v in values if _is_number(v)]
            return np.isin(self.numbers, numbers)
        if casefold:
            values = frozenset(v.casefold() for v in values)
        matches: dict[object, bool] = {}  # a user's history repeats a few event types many times
        result = np.zeros(self.size, dtype=bool)
        for row, value in enumerate(self._values):
            matched = matches.get(value)
            if matched is None:
                parts = _split_categorical(value)
                if casefold:
                    parts = frozenset(p.casefold() for p in parts)
                matched = matches[value] = not values.isdisjoint(parts)
            result[row] = matched
        return result


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _resolve_column(columns: pd.Index, dataset: str, field_name: str) -> str:
    if field_name in columns:
        return field_name
    matches = [c for c in columns if str(c).upper() == field_name.upper()]
    if len(matches) == 1:
        return matches[0]
    raise ValueError(
        f"filter expression uses {dataset}.{field_name}, but the {dataset} dataset has no such field"
    )


class _ItemsTable:
    """An items frame prepared for filtering; built once per frame object and shared by all filters."""

    def __init__(self, items: pd.DataFrame):
        column = _resolve_column(items.columns, ITEMS, ITEM_ID)
        self.item_ids = items[column].astype(str).to_numpy(dtype=object)
        self._items = items
        self._columns: dict[str, _IndexedColumn] = {}
        self._ids_by_value: dict[tuple[str, str], frozenset[str]] = {}
        self._lock = threading.Lock()

    def column(self, field_name: str) -> _IndexedColumn:
        prepared = self._columns.get(field_name)
        if prepared is None:
            with self._lock:
                prepared = self._columns.get(field_name)
                if prepared is None:
                    name = _resolve_column(self._items.columns, ITEMS, field_name)
                    prepared = _IndexedColumn(self._items[name])
                    self._columns[field_name] = prepared
        return prepared

    def ids_with_value(self, field_name: str, value: str) -> frozenset[str]:
        """Items whose (categorical) field holds `value`; kept, since apps ask for the same values again."""
        key = (field_name, value)
        ids = self._ids_by_value.get(key)
        if ids is None:
            rows = self.column(field_name).positions.get(value)
            ids = frozenset(self.item_ids[rows]) if rows is not None else frozenset()
            self._ids_by_value[key] = ids
        return ids


_tables: dict[int, tuple[weakref.ref, _ItemsTable]] = {}
_tables_lock = threading.Lock()


def _items_table(items: pd.DataFrame) -> _ItemsTable:
    # Keyed by frame identity: the service replaces its items frame when items change, it never
    # edits one in place. The weak reference tells a live frame from a new one at a reused id().
    entry = _tables.get(id(items))
    if entry is not None and entry[0]() is items:
        return entry[1]
    table = _ItemsTable(items)
    with _tables_lock:
        for key in [key for key, (ref, _) in _tables.items() if ref() is None]:
            del _tables[key]
        _tables[id(items)] = (weakref.ref(items), table)
    return table


# --- evaluation ----------------------------------------------------------------------------------


@dataclass
class _Request:
    values: Mapping[str, str]
    current_item: Mapping[str, str] | None
    parsed_values: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def placeholder(self, name: str) -> tuple[str, ...]:
        if name not in self.parsed_values:
            self.parsed_values[name] = parse_filter_values(name, self.values[name])
        return self.parsed_values[name]

    def current_item_value(self, field_name: str) -> object:
        if self.current_item is None:
            raise ValueError(
                f"filter uses CurrentItem.{field_name}, which needs an itemId (related-items recommendations)"
            )
        value = self.current_item.get(field_name)
        if value is None:
            matches = [v for k, v in self.current_item.items() if k.upper() == field_name.upper()]
            value = matches[0] if matches else None
        return value


def _operand_strings(condition: Condition, request: _Request) -> frozenset[str]:
    operand = condition.operand
    if isinstance(operand, Strings):
        return operand.values
    if isinstance(operand, Placeholder):
        return frozenset(request.placeholder(operand.name))
    assert isinstance(operand, CurrentItemField)
    return _split_categorical(request.current_item_value(operand.field))


def _operand_number(condition: Condition, request: _Request) -> float:
    operand = condition.operand
    if isinstance(operand, Number):
        return operand.value
    if isinstance(operand, Placeholder):
        return _single_number(f"filterValues[{operand.name}]", request.placeholder(operand.name))
    assert isinstance(operand, CurrentItemField)
    value = request.current_item_value(operand.field)
    if value is None or value == "":
        return float("nan")
    return _single_number(f"CurrentItem.{operand.field}", (str(value),))


def _evaluate(node: Node, column_of, size: int, request: _Request) -> np.ndarray:
    if isinstance(node, AllOf):
        mask = np.ones(size, dtype=bool)
        for part in node.parts:
            mask &= _evaluate(part, column_of, size, request)
        return mask
    if isinstance(node, AnyOf):
        mask = np.zeros(size, dtype=bool)
        for part in node.parts:
            mask |= _evaluate(part, column_of, size, request)
        return mask
    is_event_type = node.dataset == INTERACTIONS and node.field.upper() == EVENT_TYPE
    if node.operator in ("IN", "NOT IN"):
        values = _operand_strings(node, request)
        if is_event_type and ANY_EVENT_TYPE in values:
            matched = np.ones(size, dtype=bool)
        else:
            matched = column_of(node.field).isin(values, casefold=is_event_type)
        return matched if node.operator == "IN" else ~matched
    return _compare(column_of(node.field).numbers, node.operator, _operand_number(node, request))


def _user_condition_holds(condition: Condition, user: Mapping[str, str] | None, request: _Request) -> bool:
    if user is None:
        return False
    value = user.get(condition.field)
    if value is None:
        matches = [v for k, v in user.items() if k.upper() == condition.field.upper()]
        value = matches[0] if matches else None
    if condition.operator in ("IN", "NOT IN"):
        if value is None:
            return False
        matched = not _split_categorical(value).isdisjoint(_operand_strings(condition, request))
        return matched if condition.operator == "IN" else not matched
    try:
        number = float(value) if value not in (None, "") else float("nan")
    except (TypeError, ValueError):
        return False
    return bool(_compare(np.array([number]), condition.operator, _operand_number(condition, request))[0])


class FilterExpression:
    """A parsed filter; `apply` turns it into allowed / excluded item ids for one request."""

    def __init__(self, expression: str, parts: list[Expression]):
        self.expression = expression
        self._parts = parts
        self.placeholders: frozenset[str] = frozenset().union(*(p.placeholders for p in parts))
        fields: dict[str, set[str]] = {}
        for part in parts:
            for condition in (*conditions(part.where), *part.user_conditions):
                fields.setdefault(condition.dataset, set()).add(condition.field)
                if isinstance(condition.operand, CurrentItemField):
                    fields.setdefault(CURRENT_ITEM, set()).add(condition.operand.field)
        # dataset -> fields the filter reads, for checking against the schemas at CreateFilter.
        self.referenced_fields: dict[str, frozenset[str]] = {k: frozenset(v) for k, v in fields.items()}
        self.uses_current_item = CURRENT_ITEM in self.referenced_fields
        self._results: OrderedDict[tuple, frozenset[str]] = OrderedDict()
        self._results_table: weakref.ref | None = None
        self._results_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"FilterExpression({self.expression!r})"

    def apply(
        self,
        *,
        user_interactions: pd.DataFrame | None,
        items: pd.DataFrame | None,
        user: Mapping[str, str] | None,
        values: Mapping[str, str] | None,
        current_item: Mapping[str, str] | None = None,
    ) -> tuple[frozenset[str] | None, frozenset[str]]:
        """(allowed item ids, or None when no INCLUDE expression applies; excluded item ids).

        user_interactions: this user's rows (ITEM_ID, EVENT_TYPE, ...); items: ITEM_ID + metadata;
        user: this user's metadata; values: GetRecommendations' filterValues; current_item: the
        metadata of the itemId asked about (related-items recommendations).
        Raises ValueError naming the placeholder or field when the request cannot be filtered.

        Items-based results are cached per items frame object (replace the frame when items change,
        never edit it in place), and the same values give back the same frozenset object, so a caller
        can memoise its own per-set work (e.g. ids -> model positions) keyed on the set in O(1).
        """
        request = _Request(values or {}, current_item)
        included: list[frozenset[str]] = []
        excluded: list[frozenset[str]] = []
        for index, part in enumerate(self._parts):
            missing = sorted(name for name in part.placeholders if name not in request.values)
            if missing:
                if part.action == "INCLUDE":
                    names = ", ".join(f"${name}" for name in missing)
                    raise ValueError(
                        f"filterValues has no value for {names}, which the filter's INCLUDE expression needs"
                    )
                continue
            if not all(_user_condition_holds(c, user, request) for c in part.user_conditions):
                continue
            if part.dataset == ITEMS:
                result = self._items_result(index, part, items, request)
            else:
                result = self._interactions_result(part, user_interactions, request)
            (included if part.action == "INCLUDE" else excluded).append(result)
        allowed = _union(included) if included else None
        return allowed, _union(excluded)

    def _items_result(
        self, index: int, part: Expression, items: pd.DataFrame | None, request: _Request
    ) -> frozenset[str]:
        if items is None:
            raise ValueError(f"filter expression {part.text!r} needs the Items dataset, which has no data")
        table = _items_table(items)
        key = (index, *self._request_key(part, request))
        with self._results_lock:
            if self._results_table is None or self._results_table() is not table:
                self._results.clear()
                self._results_table = weakref.ref(table)
            cached = self._results.get(key)
            if cached is not None:
                self._results.move_to_end(key)
                return cached
        where = part.where
        if (
            isinstance(where, Condition)
            and where.operator == "IN"
            and not table.column(where.field).numeric_dtype
        ):
            # The common "Items.FIELD IN (...)": a union of per-value sets is far cheaper than building
            # a set of ids from a mask of the whole catalogue on every new combination of values.
            sets = [table.ids_with_value(where.field, value) for value in _operand_strings(where, request)]
            result = _union(sets)
        else:
            mask = _evaluate(where, table.column, len(table.item_ids), request)
            result = frozenset(table.item_ids[mask])
        with self._results_lock:
            self._results[key] = result
            if len(self._results) > _RESULT_CACHE_SIZE:
                self._results.popitem(last=False)
        return result

    @staticmethod
    def _request_key(part: Expression, request: _Request) -> tuple:
        placeholder_values = tuple(
            (name, frozenset(request.placeholder(name))) for name in sorted(part.placeholders)
        )
        current_item_values = tuple(
            (c.operand.field, str(request.current_item_value(c.operand.field)))
            for c in conditions(part.where)
            if isinstance(c.operand, CurrentItemField)
        )
        return placeholder_values, current_item_values

    @staticmethod
    def _interactions_result(
        part: Expression, user_interactions: pd.DataFrame | None, request: _Request
    ) -> frozenset[str]:
        if user_interactions is None or user_interactions.empty:
            return frozenset()
        columns = user_interactions.columns

        def column_of(field_name: str) -> _DirectColumn:
            return _DirectColumn(user_interactions[_resolve_column(columns, INTERACTIONS, field_name)])

        mask = _evaluate(part.where, column_of, len(user_interactions), request)
        item_ids = user_interactions[_resolve_column(columns, INTERACTIONS, ITEM_ID)].to_numpy(dtype=object)
        return frozenset(str(item_id) for item_id in item_ids[mask])


def parse_filter_expression(expression: str) -> FilterExpression:
    """Parse a CreateFilter filterExpression; ValueError names the position and token on bad syntax."""
    if not isinstance(expression, str) or not expression.strip():
        raise ValueError("filter expression is empty")
    return FilterExpression(expression, Parser(expression).parse())
