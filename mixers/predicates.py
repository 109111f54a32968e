"""Selection predicates: `col op value` clauses joined by `and`, parsed, checked, compiled to DuckDB SQL.

Why a tiny language and not raw SQL: a mixture spec is user input that reaches a database; a grammar of
known operators over known columns cannot express anything but a filter, and every value travels as a
bound parameter, so no spec can inject SQL. Why checked against the corpus schema: a typo in a column name
or a number compared with text should fail in a second with the list of columns, not silently select
nothing after an hour of sampling.

    quality >= 0.2 and toxicity < 0.1 and ppl_bucket in [head, middle] and lang == en

Values are numbers, quoted strings, bare words (strings: `en`, `wikipedia.org`) or true/false. A
missing value (NULL) equals nothing: it fails `==`, `in` and every ordering, and passes `!=` and
`not in` (so `site != github.com` keeps documents that have no site).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from mixers.errors import MixError

Scalar = int | float | str | bool
COMPARISONS = ("==", "!=", "<", "<=", ">", ">=")
MEMBERSHIP = ("in", "not in")
SQL_OPS = {"==": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">=", "in": "IN", "not in": "NOT IN"}
NULL_PASSES = ("!=", "not in")
COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<op>==|!=|<=|>=|<|>|[=~^%&|*/+@$#:;?!]+)
      | (?P<punct>[\[\](),])
      | (?P<string>'[^']*'|"[^"]*")
      | (?P<number>-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?![A-Za-z_]))
      | (?P<word>[A-Za-z_][A-Za-z0-9_.\-]*)
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Clause:
    column: str
    op: str
    value: Scalar | tuple[Scalar, ...]

    def text(self) -> str:
        value = (
            "[" + ", ".join(map(_show, self.value)) + "]"
            if isinstance(self.value, tuple)
            else _show(self.value)
        )
        return f"{self.column} {self.op} {value}"


@dataclass(frozen=True)
class Predicate:
    """A conjunction of clauses; the empty predicate selects every document."""

    clauses: tuple[Clause, ...] = ()

    def text(self) -> str:
        return " and ".join(clause.text() for clause in self.clauses)

    def columns(self) -> list[str]:
        return sorted({clause.column for clause in self.clauses})

    def __and__(self, other: Predicate) -> Predicate:
        return Predicate(self.clauses + other.clauses)


def _show(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "'" + value + "'" if "'" not in value else '"' + value + '"'
    return repr(value)


def parse_predicate(text: str | list[str] | None, where: str = "where") -> Predicate:
    """Parse `col op value [and ...]` (or a list of such strings, all joined by `and`)."""
    if text is None:
        return Predicate()
    if isinstance(text, list):
        result = Predicate()
        for index, item in enumerate(text):
            result = result & parse_predicate(item, f"{where}[{index}]")
        return result
    tokens = _tokenize(text, where)
    clauses, position = [], 0
    while position < len(tokens):
        clause, position = _parse_clause(tokens, position, text, where)
        clauses.append(clause)
        if position < len(tokens):
            kind, value = tokens[position]
            if (kind, value.lower()) != ("word", "and"):
                hint = (
                    "; only `and` joins clauses (use `in [a, b]` for alternatives)"
                    if value.lower() == "or"
                    else ""
                )
                raise MixError(
                    f"{where}: expected `and` after `{clause.text()}` in {text!r}, got {value!r}{hint}"
                )
            position += 1
            if position == len(tokens):
                raise MixError(f"{where}: {text!r} ends with `and`; add a clause after it")
    if not clauses:
        raise MixError(f"{where}: empty predicate; write `column op value` or leave the key out")
    return Predicate(tuple(clauses))


def _tokenize(text: str, where: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    stripped = text.rstrip()
    while position < len(stripped):
        match = _TOKEN.match(stripped, position)
        if match is None or match.end() == position:
            raise MixError(
                f"{where}: cannot read {stripped[position:]!r} in {text!r}; write `column op value`"
            )
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


def _parse_clause(tokens: list[tuple[str, str]], position: int, text: str, where: str) -> tuple[Clause, int]:
    kind, column = tokens[position]
    if kind != "word" or not COLUMN.match(column):
        raise MixError(f"{where}: expected a column name in {text!r}, got {column!r}")
    op, position = _parse_op(tokens, position + 1, text, where)
    if position >= len(tokens):
        raise MixError(f"{where}: `{column} {op}` in {text!r} has no value")
    if op in MEMBERSHIP:
        values, position = _parse_list(tokens, position, text, where)
        return Clause(column, op, values), position
    return Clause(column, op, _literal(tokens[position], text, where)), position + 1


def _parse_op(tokens: list[tuple[str, str]], position: int, text: str, where: str) -> tuple[str, int]:
    if position >= len(tokens):
        raise MixError(f"{where}: {text!r} ends after a column name; add `op value`")
    kind, value = tokens[position]
    if kind == "op" and value in COMPARISONS:
        return value, position + 1
    if kind == "word" and value.lower() == "in":
        return "in", position + 1
    followed_by_in = position + 1 < len(tokens) and tokens[position + 1][1].lower() == "in"
    if kind == "word" and value.lower() == "not" and followed_by_in:
        return "not in", position + 2
    allowed = ", ".join((*COMPARISONS, *MEMBERSHIP))
    raise MixError(f"{where}: unknown operator {value!r} in {text!r}; use one of {allowed}")


def _parse_list(tokens: list[tuple[str, str]], position: int, text: str, where: str) -> tuple[tuple, int]:
    opener = tokens[position][1]
    if opener not in "[(":
        raise MixError(f"{where}: `in` needs a list like [a, b] in {text!r}, got {opener!r}")
    closer = "]" if opener == "[" else ")"
    values: list[Scalar] = []
    position += 1
    while position < len(tokens) and tokens[position][1] != closer:
        values.append(_literal(tokens[position], text, where))
        position += 1
        if position < len(tokens) and tokens[position][1] == ",":
            position += 1
    if position >= len(tokens):
        raise MixError(f"{where}: list in {text!r} is not closed with {closer!r}")
    if not values:
        raise MixError(f"{where}: empty list in {text!r}; give at least one value")
    return tuple(values), position + 1


def _literal(token: tuple[str, str], text: str, where: str) -> Scalar:
    kind, value = token
    if kind == "string":
        return value[1:-1]
    if kind == "number":
        return float(value) if any(c in value for c in ".eE") else int(value)
    if kind == "word":
        lowered = value.lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        if lowered in ("and", "in", "not", "or"):
            raise MixError(f"{where}: keyword {value!r} where a value belongs in {text!r}; quote it")
        return value
    raise MixError(f"{where}: expected a value in {text!r}, got {value!r}")


def check_predicate(predicate: Predicate, schema: pa.Schema, where: str) -> Predicate:
    """Check every clause against the corpus schema; returns the predicate with values in column types."""
    return Predicate(tuple(_check_clause(clause, schema, where) for clause in predicate.clauses))


def _check_clause(clause: Clause, schema: pa.Schema, where: str) -> Clause:
    if clause.column not in schema.names:
        columns = ", ".join(sorted(schema.names))
        raise MixError(
            f"{where}: column {clause.column!r} does not exist in the corpus; columns are: {columns}"
        )
    kind = column_kind(schema.field(clause.column).type)
    values = clause.value if isinstance(clause.value, tuple) else (clause.value,)
    converted = tuple(_convert(value, kind, clause, where) for value in values)
    if kind == "bool" and clause.op not in ("==", "!=", "in", "not in"):
        raise MixError(f"{where}: `{clause.text()}`: {clause.column} is true/false; use == or !=")
    return Clause(clause.column, clause.op, converted if isinstance(clause.value, tuple) else converted[0])


def column_kind(dtype: pa.DataType) -> str:
    """The family a column's values belong to, which decides the literals it may be compared with."""
    if pa.types.is_boolean(dtype):
        return "bool"
    if pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
        return "number"
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype) or pa.types.is_dictionary(dtype):
        return "text"
    if pa.types.is_timestamp(dtype) or pa.types.is_date(dtype):
        return "time"
    return str(dtype)


def _convert(value: Scalar, kind: str, clause: Clause, where: str) -> Any:
    ok = {
        "number": isinstance(value, int | float) and not isinstance(value, bool),
        "text": isinstance(value, str),
        "bool": isinstance(value, bool),
        "time": isinstance(value, str),
    }.get(kind)
    if ok is None:
        raise MixError(f"{where}: column {clause.column} of type {kind} cannot be used in a predicate")
    if not ok:
        wanted = {"number": "a number", "text": "text (quote it)", "bool": "true or false", "time": "a date"}
        raise MixError(
            f"{where}: `{clause.text()}` compares {kind} column {clause.column} with {_show(value)}; "
            f"use {wanted[kind]}"
        )
    if kind == "time":
        try:
            stamp = datetime.fromisoformat(str(value))
        except ValueError:
            raise MixError(
                f"{where}: `{clause.text()}`: {value!r} is not an ISO date like 2024-01-31"
            ) from None
        return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)
    return value


def compile_predicate(predicate: Predicate) -> tuple[str, list[Any]]:
    """SQL text with `?` placeholders and its parameters; column names were checked against the schema."""
    if not predicate.clauses:
        return "TRUE", []
    parts, params = [], []
    for clause in predicate.clauses:
        column = quote_identifier(clause.column)
        if isinstance(clause.value, tuple):
            marks = ", ".join("?" for _ in clause.value)
            sql = f"{column} {SQL_OPS[clause.op]} ({marks})"
            params.extend(clause.value)
        else:
            sql = f"{column} {SQL_OPS[clause.op]} ?"
            params.append(clause.value)
        parts.append(f"({column} IS NULL OR {sql})" if clause.op in NULL_PASSES else sql)
    return "COALESCE(" + " AND ".join(parts) + ", FALSE)", params


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
