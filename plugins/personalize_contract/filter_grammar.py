"""Amazon Personalize's filter expression language: tokens, syntax tree, parser and filterValues.

The grammar, as the Personalize developer guide describes it ("Filter expression structure and
elements", "Combining multiple expressions"):

    filter     := expression ("|" expression)*
    expression := (INCLUDE | EXCLUDE) ItemID WHERE conditions [IF user_cond (AND user_cond)*]
    conditions := condition ((AND | OR) condition)*          AND binds tighter than OR
    condition  := Dataset.FIELD [NOT] IN ( "a", "b" ) | Dataset.FIELD [NOT] IN ( $PARAM )
                | Dataset.FIELD [NOT] IN CurrentItem.FIELD
                | Dataset.FIELD (= | != | < | <= | > | >=) (number | $PARAM | CurrentItem.FIELD)

Dataset is Items or Interactions, one of them per expression (chain both with "|"); CurrentUser only
after IF. Keywords and dataset names are case-insensitive. `parse_filter` checks an expression as
CreateFilter does (a ValueError names the position); the local service evaluates the syntax tree
(include/local_personalize/filters.py).
"""

from __future__ import annotations

import csv
import functools
import re
from dataclasses import dataclass

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
class Token:
    kind: str  # string | number | param | op | word | punct | end
    text: str
    position: int  # 1-based character position in the expression

    def describe(self) -> str:
        return "the end of the expression" if self.kind == "end" else f"{self.text!r}"


def tokenize(expression: str) -> list[Token]:
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
            tokens.append(Token(kind, match.group(), position + 1))
        position = match.end()
    tokens.append(Token("end", "", len(expression) + 1))
    return tokens


# --- syntax tree ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Strings:
    values: frozenset[str]


@dataclass(frozen=True)
class Number:
    value: float


@dataclass(frozen=True)
class Placeholder:
    name: str


@dataclass(frozen=True)
class CurrentItemField:
    field: str


Operand = Strings | Number | Placeholder | CurrentItemField


@dataclass(frozen=True)
class Condition:
    dataset: str
    field: str
    operator: str  # IN | NOT IN | = | != | < | <= | > | >=
    operand: Operand


@dataclass(frozen=True)
class AllOf:  # AND
    parts: tuple[Node, ...]


@dataclass(frozen=True)
class AnyOf:  # OR
    parts: tuple[Node, ...]


Node = Condition | AllOf | AnyOf


@dataclass(frozen=True)
class Expression:
    action: str  # INCLUDE | EXCLUDE
    dataset: str  # Items | Interactions
    where: Node
    user_conditions: tuple[Condition, ...]
    placeholders: frozenset[str]
    text: str


def conditions(node: Node):
    if isinstance(node, Condition):
        yield node
    else:
        for part in node.parts:
            yield from conditions(part)


# --- parser --------------------------------------------------------------------------------------


class Parser:
    def __init__(self, expression: str):
        self.expression = expression
        self.tokens = tokenize(expression)
        self.index = 0
        self.expression_dataset: str | None = None  # the dataset of the first WHERE condition

    @property
    def token(self) -> Token:
        return self.tokens[self.index]

    def error(self, expected: str, token: Token | None = None) -> ValueError:
        token = token or self.token
        return ValueError(
            f"filter expression: expected {expected} at position {token.position}, found {token.describe()}"
        )

    def is_keyword(self, *keywords: str) -> bool:
        return self.token.kind == "word" and self.token.text.upper() in keywords

    def take_keyword(self, keyword: str, expected: str | None = None) -> Token:
        if not self.is_keyword(keyword):
            raise self.error(expected or keyword)
        return self.advance()

    def take(self, kind: str, text: str | None, expected: str) -> Token:
        if self.token.kind != kind or (text is not None and self.token.text != text):
            raise self.error(expected)
        return self.advance()

    def advance(self) -> Token:
        token = self.token
        self.index += 1
        return token

    def parse(self) -> list[Expression]:
        expressions = [self.parse_expression()]
        while self.token.kind == "punct" and self.token.text == "|":
            self.advance()
            expressions.append(self.parse_expression())
        if self.token.kind != "end":
            raise self.error("AND, OR, IF, '|' or the end of the expression")
        return expressions

    def parse_expression(self) -> Expression:
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
        user_conditions: list[Condition] = []
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
            for c in (*conditions(where), *user_conditions)
            if isinstance(c.operand, Placeholder)
        )
        return Expression(
            action=action,
            dataset=self.expression_dataset,
            where=where,
            user_conditions=tuple(user_conditions),
            placeholders=placeholders,
            text=self.expression[start - 1 : end - 1].strip(),
        )

    def parse_or(self) -> Node:
        parts = [self.parse_and()]
        while self.is_keyword("OR"):
            self.advance()
            parts.append(self.parse_and())
        return parts[0] if len(parts) == 1 else AnyOf(tuple(parts))

    def parse_and(self) -> Node:
        parts: list[Node] = [self.parse_condition(in_if=False)]
        while self.is_keyword("AND"):
            self.advance()
            parts.append(self.parse_condition(in_if=False))
        return parts[0] if len(parts) == 1 else AllOf(tuple(parts))

    def parse_dataset_field(self) -> tuple[str, str, Token]:
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

    def parse_condition(self, *, in_if: bool) -> Condition:
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
        return Condition(dataset, field_name, operator, operand)

    def check_same_dataset(self, dataset: str, where: str) -> None:
        # Personalize: conditions chained with AND/OR can only use the first condition's dataset.
        if self.expression_dataset is None:
            self.expression_dataset = dataset
        elif self.expression_dataset != dataset:
            raise ValueError(
                f"filter expression: {where}: conditions chained with AND/OR must all use "
                f"{self.expression_dataset}; combine datasets with a second expression after '|'"
            )

    def parse_in_operand(self, dataset: str, field_name: str) -> Operand:
        if self.is_keyword("CURRENTITEM"):
            return self.parse_current_item()
        self.take("punct", "(", "'(' or CurrentItem.FIELD after IN")
        if self.token.kind == "param":
            operand: Operand = Placeholder(self.advance().text[1:])
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
        return Strings(frozenset(value for value, _ in values))

    def parse_in_value(self) -> tuple[str, Token]:
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

    def parse_comparison_operand(self, operator: Token) -> Operand:
        token = self.token
        if token.kind == "number":
            self.advance()
            return Number(float(token.text))
        if token.kind == "param":
            self.advance()
            return Placeholder(token.text[1:])
        if self.is_keyword("CURRENTITEM"):
            return self.parse_current_item()
        if token.kind == "string":
            raise ValueError(
                f"filter expression: {operator.text} at position {operator.position} compares numbers; "
                f"use IN ({token.text}) to match a string"
            )
        raise self.error(f"a number, $PARAMETER or CurrentItem.FIELD after {operator.text}")

    def parse_current_item(self) -> CurrentItemField:
        _, field_name, _ = self.parse_dataset_field()
        return CurrentItemField(field_name)


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


def parse_filter(expression: str) -> list[Expression]:
    """The expressions of a filter, joined by "|"; a ValueError names what is wrong and where."""
    return Parser(expression).parse()
