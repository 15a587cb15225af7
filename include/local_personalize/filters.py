"""Amazon Personalize filter expressions: parsed once at CreateFilter, applied on every GetRecommendations.

The language, as the Personalize developer guide describes it ("Filter expression structure and
elements", "Combining multiple expressions"):

    filter     := expression ("|" expression)*
    expression := (INCLUDE | EXCLUDE) ItemID WHERE conditions [IF user_cond (AND user_cond)*]
    conditions := condition ((AND | OR) condition)*          AND binds tighter than OR
    condition  := Dataset.FIELD [NOT] IN ( "a", "b" ) | Dataset.FIELD [NOT] IN ( $PARAM )
                | Dataset.FIELD [NOT] IN CurrentItem.FIELD
                | Dataset.FIELD (= | != | < | <= | > | >=) (number | $PARAM | CurrentItem.FIELD)

Dataset is Items or Interactions, one of them per expression (chain both with "|"); CurrentUser only
after IF. Keywords and dataset names are case-insensitive. Event types match case-insensitively
and "*" matches any; every other string matches exactly. A categorical value holding several values
joined with "|" matches IN when any of them is in the list.

Combining: INCLUDE results are united, EXCLUDE results are united, and the caller recommends only
the included items minus the excluded ones. An expression whose IF condition is false for the current
user does not apply. A placeholder missing from filterValues is an error in an INCLUDE expression;
an EXCLUDE expression with a missing placeholder is left out, as Personalize documents for
GetRecommendations' filterValues.
"""

from __future__ import annotations

import csv
import functools
import re
import threading
import weakref
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from include.pipeline.rules import CATEGORICAL_SEPARATOR

ITEMS = "Items"
INTERACTIONS = "Interactions"
CURRENT_USER = "CurrentUser"
CURRENT_ITEM = "CurrentItem"
_DATASET_NAMES = {name.upper(): name for name in (ITEMS, INTERACTIONS, CURRENT_USER, CURRENT_ITEM)}
_UNSUPPORTED_DATASETS = {"USERS", "ACTIONS", "ACTIONINTERACTIONS"}
_KEYWORDS = {"INCLUDE", "EXCLUDE", "ITEMID", "WHERE", "AND", "OR", "NOT", "IN", "IF"}
_COMPARISONS = {"=", "!=", "<", "<=", ">", ">="}
EVENT_TYPE = "EVENT_TYPE"
ITEM_ID = "ITEM_ID"
ANY_EVENT_TYPE = "*"
# Results of one expression for one set of filter values over one items table; enough for the
# handful of parameter combinations an app sends repeatedly.
_RESULT_CACHE_SIZE = 256

_TOKEN_PATTERN = re.compile(
    r"""
    (?P<space>\s+)
    | (?P<string>"(?:[^"\\]|\\.)*")
    | (?P<number>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
    | (?P<param>\$[A-Za-z0-9_]+)
    | (?P<op><=|>=|!=|=|<|>)
    | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<punct>[().,|])
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class _Token:
    kind: str  # string | number | param | op | word | punct | end
    text: str
    position: int  # 1-based character position in the expression

    def describe(self) -> str:
        return "the end of the expression" if self.kind == "end" else f"{self.text!r}"


def _tokenize(expression: str) -> list[_Token]:
    tokens = []
    position = 0
    while position < len(expression):
        match = _TOKEN_PATTERN.match(expression, position)
        if match is None:
            char = expression[position]
            hint = " (unterminated string?)" if char == '"' else ""
            raise ValueError(
                f"filter expression: unexpected character {char!r} at position {position + 1}{hint}"
            )
        kind = match.lastgroup
        if kind != "space":
            tokens.append(_Token(kind, match.group(), position + 1))
        position = match.end()
    tokens.append(_Token("end", "", len(expression) + 1))
    return tokens


# --- syntax tree ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Strings:
    values: frozenset[str]


@dataclass(frozen=True)
class _Number:
    value: float


@dataclass(frozen=True)
class _Placeholder:
    name: str


@dataclass(frozen=True)
class _CurrentItemField:
    field: str


_Operand = _Strings | _Number | _Placeholder | _CurrentItemField


@dataclass(frozen=True)
class _Condition:
    dataset: str
    field: str
    operator: str  # IN | NOT IN | = | != | < | <= | > | >=
    operand: _Operand


@dataclass(frozen=True)
class _All:  # AND
    parts: tuple[_Node, ...]


@dataclass(frozen=True)
class _Any:  # OR
    parts: tuple[_Node, ...]


_Node = _Condition | _All | _Any


@dataclass(frozen=True)
class _Expression:
    action: str  # INCLUDE | EXCLUDE
    dataset: str  # Items | Interactions
    where: _Node
    user_conditions: tuple[_Condition, ...]
    placeholders: frozenset[str]
    text: str


def _conditions(node: _Node):
    if isinstance(node, _Condition):
        yield node
    else:
        for part in node.parts:
            yield from _conditions(part)


# --- parser --------------------------------------------------------------------------------------


class _Parser:
    def __init__(self, expression: str):
        self.expression = expression
        self.tokens = _tokenize(expression)
        self.index = 0
        self.expression_dataset: str | None = None  # the dataset of the first WHERE condition

    @property
    def token(self) -> _Token:
        return self.tokens[self.index]

    def error(self, expected: str, token: _Token | None = None) -> ValueError:
        token = token or self.token
        return ValueError(
            f"filter expression: expected {expected} at position {token.position}, found {token.describe()}"
        )

    def is_keyword(self, *keywords: str) -> bool:
        return self.token.kind == "word" and self.token.text.upper() in keywords

    def take_keyword(self, keyword: str, expected: str | None = None) -> _Token:
        if not self.is_keyword(keyword):
            raise self.error(expected or keyword)
        return self.advance()

    def take(self, kind: str, text: str | None, expected: str) -> _Token:
        if self.token.kind != kind or (text is not None and self.token.text != text):
            raise self.error(expected)
        return self.advance()

    def advance(self) -> _Token:
        token = self.token
        self.index += 1
        return token

    def parse(self) -> list[_Expression]:
        expressions = [self.parse_expression()]
        while self.token.kind == "punct" and self.token.text == "|":
            self.advance()
            expressions.append(self.parse_expression())
        if self.token.kind != "end":
            raise self.error("AND, OR, IF, '|' or the end of the expression")
        return expressions

    def parse_expression(self) -> _Expression:
        start = self.token.position
        if not self.is_keyword("INCLUDE", "EXCLUDE"):
            raise self.error("INCLUDE or EXCLUDE")
        action = self.advance().text.upper()
        if self.is_keyword("ACTIONID", "USERID"):
            raise ValueError(
                f"filter expression: {self.token.text} at position {self.token.position}: "
                "only item filters (ItemID) are supported"
            )
        self.take_keyword("ITEMID", "ItemID")
        self.take_keyword("WHERE")
        self.expression_dataset = None
        where = self.parse_or()
        user_conditions: list[_Condition] = []
        if self.is_keyword("IF"):
            self.advance()
            user_conditions.append(self.parse_condition(in_if=True))
            while self.is_keyword("AND"):
                self.advance()
                user_conditions.append(self.parse_condition(in_if=True))
            if self.is_keyword("OR"):
                raise ValueError(
                    f"filter expression: OR at position {self.token.position}: "
                    "an IF condition can only be extended with AND"
                )
        end = self.token.position
        placeholders = frozenset(
            c.operand.name
            for c in (*_conditions(where), *user_conditions)
            if isinstance(c.operand, _Placeholder)
        )
        return _Expression(
            action=action,
            dataset=self.expression_dataset,
            where=where,
            user_conditions=tuple(user_conditions),
            placeholders=placeholders,
            text=self.expression[start - 1 : end - 1].strip(),
        )

    def parse_or(self) -> _Node:
        parts = [self.parse_and()]
        while self.is_keyword("OR"):
            self.advance()
            parts.append(self.parse_and())
        return parts[0] if len(parts) == 1 else _Any(tuple(parts))

    def parse_and(self) -> _Node:
        parts: list[_Node] = [self.parse_condition(in_if=False)]
        while self.is_keyword("AND"):
            self.advance()
            parts.append(self.parse_condition(in_if=False))
        return parts[0] if len(parts) == 1 else _All(tuple(parts))

    def parse_dataset_field(self) -> tuple[str, str, _Token]:
        token = self.token
        if token.kind != "word" or token.text.upper() in _KEYWORDS:
            raise self.error("a dataset field such as Items.CATEGORY")
        self.advance()
        dataset = _DATASET_NAMES.get(token.text.upper())
        if dataset is None:
            if token.text.upper() in _UNSUPPORTED_DATASETS:
                raise ValueError(
                    f"filter expression: {token.text} at position {token.position}: item filters use "
                    "Items, Interactions, or CurrentUser after IF"
                )
            raise ValueError(
                f"filter expression: unknown dataset {token.text!r} at position {token.position}; "
                "expected Items, Interactions, CurrentUser or CurrentItem"
            )
        self.take("punct", ".", f"'.' after {token.text}")
        field_token = self.token
        if field_token.kind != "word":
            raise self.error(f"a field name after {token.text}.")
        self.advance()
        return dataset, field_token.text, token

    def parse_condition(self, *, in_if: bool) -> _Condition:
        dataset, field_name, dataset_token = self.parse_dataset_field()
        where = f"{dataset_token.text} at position {dataset_token.position}"
        if in_if and dataset != CURRENT_USER:
            raise ValueError(f"filter expression: {where}: IF conditions can only test CurrentUser fields")
        if not in_if and dataset == CURRENT_USER:
            raise ValueError(
                f"filter expression: {where}: CurrentUser can only be tested in an IF condition "
                "at the end of the expression"
            )
        if dataset == CURRENT_ITEM:
            raise ValueError(
                f"filter expression: {where}: CurrentItem can only be the value a field is compared with"
            )
        if not in_if:
            self.check_same_dataset(dataset, where)
        if self.is_keyword("NOT"):
            self.advance()
            self.take_keyword("IN", "IN after NOT")
            operator = "NOT IN"
        elif self.is_keyword("IN"):
            self.advance()
            operator = "IN"
        elif self.token.kind == "op":
            operator_token = self.advance()
            operator = operator_token.text
        else:
            raise self.error("IN, NOT IN or a comparison operator (=, !=, <, <=, >, >=)")
        if operator in ("IN", "NOT IN"):
            operand = self.parse_in_operand(dataset, field_name)
        else:
            operand = self.parse_comparison_operand(operator_token)
        return _Condition(dataset, field_name, operator, operand)

    def check_same_dataset(self, dataset: str, where: str) -> None:
        # Personalize: conditions chained with AND/OR can only use the first condition's dataset.
        if self.expression_dataset is None:
            self.expression_dataset = dataset
        elif self.expression_dataset != dataset:
            raise ValueError(
                f"filter expression: {where}: conditions chained with AND/OR must all use "
                f"{self.expression_dataset}; combine datasets with a second expression after '|'"
            )

    def parse_in_operand(self, dataset: str, field_name: str) -> _Operand:
        if self.is_keyword("CURRENTITEM"):
            return self.parse_current_item()
        self.take("punct", "(", "'(' or CurrentItem.FIELD after IN")
        if self.token.kind == "param":
            operand: _Operand = _Placeholder(self.advance().text[1:])
            self.take("punct", ")", "')' after the placeholder")
            return operand
        values = [self.parse_in_value()]
        while self.token.kind == "punct" and self.token.text == ",":
            self.advance()
            values.append(self.parse_in_value())
        self.take("punct", ")", "',' or ')' in the value list")
        for value, token in values:
            if value == ANY_EVENT_TYPE and not (dataset == INTERACTIONS and field_name.upper() == EVENT_TYPE):
                raise ValueError(
                    f'filter expression: "*" at position {token.position} is only allowed for '
                    "Interactions.EVENT_TYPE"
                )
        return _Strings(frozenset(value for value, _ in values))

    def parse_in_value(self) -> tuple[str, _Token]:
        token = self.token
        if token.kind == "string":
            self.advance()
            return _unescape(token.text[1:-1]), token
        if token.kind == "number":
            self.advance()
            return token.text, token
        if token.kind == "param":
            raise ValueError(
                f"filter expression: placeholder {token.text} at position {token.position} must be "
                "the only entry in its parentheses"
            )
        raise self.error('a quoted value such as "click"')

    def parse_comparison_operand(self, operator: _Token) -> _Operand:
        token = self.token
        if token.kind == "number":
            self.advance()
            return _Number(float(token.text))
        if token.kind == "param":
            self.advance()
            return _Placeholder(token.text[1:])
        if self.is_keyword("CURRENTITEM"):
            return self.parse_current_item()
        if token.kind == "string":
            raise ValueError(
                f"filter expression: {operator.text} at position {operator.position} compares numbers; "
                f"use IN ({token.text}) to match a string"
            )
        raise self.error(f"a number, $PARAMETER or CurrentItem.FIELD after {operator.text}")

    def parse_current_item(self) -> _CurrentItemField:
        _, field_name, _ = self.parse_dataset_field()
        return _CurrentItemField(field_name)


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


# --- filter values -------------------------------------------------------------------------------


def parse_filter_values(name: str, raw: str) -> tuple[str, ...]:
    """One filterValues entry as GetRecommendations sends it: `"\\"shoes\\",\\"hats\\""` -> ("shoes", "hats").

    Values are comma-separated and each is double-quoted; an unquoted value is taken as written.
    """
    try:
        return _read_values(raw)
    except csv.Error as error:
        raise ValueError(f"filterValues[{name}]: cannot read {raw!r}: {error}") from None


@functools.lru_cache(maxsize=4096)  # apps send the same few values over and over
def _read_values(raw: str) -> tuple[str, ...]:
    rows = list(csv.reader([raw], skipinitialspace=True, escapechar="\\", strict=True))
    return tuple(value for value in (rows[0] if rows else []) if value != "")


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


def _operand_strings(condition: _Condition, request: _Request) -> frozenset[str]:
    operand = condition.operand
    if isinstance(operand, _Strings):
        return operand.values
    if isinstance(operand, _Placeholder):
        return frozenset(request.placeholder(operand.name))
    assert isinstance(operand, _CurrentItemField)
    return _split_categorical(request.current_item_value(operand.field))


def _operand_number(condition: _Condition, request: _Request) -> float:
    operand = condition.operand
    if isinstance(operand, _Number):
        return operand.value
    if isinstance(operand, _Placeholder):
        return _single_number(f"filterValues[{operand.name}]", request.placeholder(operand.name))
    assert isinstance(operand, _CurrentItemField)
    value = request.current_item_value(operand.field)
    if value is None or value == "":
        return float("nan")
    return _single_number(f"CurrentItem.{operand.field}", (str(value),))


def _evaluate(node: _Node, column_of, size: int, request: _Request) -> np.ndarray:
    if isinstance(node, _All):
        mask = np.ones(size, dtype=bool)
        for part in node.parts:
            mask &= _evaluate(part, column_of, size, request)
        return mask
    if isinstance(node, _Any):
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


def _user_condition_holds(condition: _Condition, user: Mapping[str, str] | None, request: _Request) -> bool:
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

    def __init__(self, expression: str, parts: list[_Expression]):
        self.expression = expression
        self._parts = parts
        self.placeholders: frozenset[str] = frozenset().union(*(p.placeholders for p in parts))
        fields: dict[str, set[str]] = {}
        for part in parts:
            for condition in (*_conditions(part.where), *part.user_conditions):
                fields.setdefault(condition.dataset, set()).add(condition.field)
                if isinstance(condition.operand, _CurrentItemField):
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
        self, index: int, part: _Expression, items: pd.DataFrame | None, request: _Request
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
            isinstance(where, _Condition)
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
    def _request_key(part: _Expression, request: _Request) -> tuple:
        placeholder_values = tuple(
            (name, frozenset(request.placeholder(name))) for name in sorted(part.placeholders)
        )
        current_item_values = tuple(
            (c.operand.field, str(request.current_item_value(c.operand.field)))
            for c in _conditions(part.where)
            if isinstance(c.operand, _CurrentItemField)
        )
        return placeholder_values, current_item_values

    @staticmethod
    def _interactions_result(
        part: _Expression, user_interactions: pd.DataFrame | None, request: _Request
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
    return FilterExpression(expression, _Parser(expression).parse())
