"""The predicate language: what it parses, what it refuses, and that values never become SQL text."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pytest

from mixers.errors import MixError
from mixers.predicates import Clause, check_predicate, compile_predicate, parse_predicate

SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("quality", pa.float64()),
        ("n_words", pa.int64()),
        ("ppl_bucket", pa.string()),
        ("site", pa.string()),
        ("crawl_date", pa.timestamp("us", tz="UTC")),
        ("flagged", pa.bool_()),
    ]
)
ROWS = pa.table(
    {
        "id": ["a", "b", "c", "d"],
        "quality": [0.9, 0.5, None, 0.3],
        "n_words": [10, 200, 50, 5],
        "ppl_bucket": ["head", "tail", "middle", None],
        "site": ["github.com", "wikipedia.org", None, "bbc.co.uk"],
        "crawl_date": pa.array([None, None, None, None], pa.timestamp("us", tz="UTC")),
        "flagged": [False, True, False, None],
    },
    schema=SCHEMA,
)


def select_ids(text: str) -> list[str]:
    """Run a predicate the way the sampler does: compiled SQL with bound parameters, over real rows."""
    sql, params = compile_predicate(check_predicate(parse_predicate(text), SCHEMA, "where"))
    with duckdb.connect() as con:
        con.register("rows", ROWS)
        return [r[0] for r in con.execute(f"SELECT id FROM rows WHERE {sql} ORDER BY id", params).fetchall()]


def test_parses_the_issue_examples() -> None:
    predicate = parse_predicate("quality >= 0.2 and ppl_bucket in [head, middle] and site == 'bbc.co.uk'")
    assert predicate.clauses == (
        Clause("quality", ">=", 0.2),
        Clause("ppl_bucket", "in", ("head", "middle")),
        Clause("site", "==", "bbc.co.uk"),
    )
    assert (
        parse_predicate(["n_words > 3", "site != github.com"]).text()
        == "n_words > 3 and site != 'github.com'"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("quality >= 0.5", ["a", "b"]),
        ("quality < 0.5", ["d"]),
        ("n_words in [10, 50]", ["a", "c"]),
        ("ppl_bucket not in (tail)", ["a", "c", "d"]),  # a missing bucket is "not tail"
        ("site != github.com", ["b", "c", "d"]),  # a missing site is not github.com
        ("site == github.com", ["a"]),
        ("flagged == false", ["a", "c"]),
        ("quality > 0.2 and n_words <= 10", ["a", "d"]),
        ("crawl_date >= '2020-01-01'", []),
    ],
)
def test_compiled_predicates_select_the_right_rows(text: str, expected: list[str]) -> None:
    assert select_ids(text) == expected


def test_values_are_parameters_never_sql_text() -> None:
    hostile = "x' OR 1=1; DROP TABLE rows; --"
    predicate = check_predicate(parse_predicate(f'site == "{hostile}"'), SCHEMA, "where")
    sql, params = compile_predicate(predicate)
    assert hostile not in sql and params == [hostile]
    assert select_ids(f'site == "{hostile}"') == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("quality >=", "has no value"),
        ("quality ~ 0.2", "unknown operator '~'"),
        ("quality > 0.2 or n_words > 3", "only `and` joins clauses"),
        ("quality > 0.2 and", "ends with `and`"),
        ("0.2 < quality", "expected a column name"),
        ("ppl_bucket in []", "empty list"),
        ("ppl_bucket in [head", "not closed"),
        ("quality", "ends after a column name"),
    ],
)
def test_malformed_predicates_fail_with_one_line(text: str, message: str) -> None:
    with pytest.raises(MixError, match="^where: .*" + message.replace("(", r"\(").replace("[", r"\[")):
        parse_predicate(text, "where")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "qualty >= 0.2",
            "column 'qualty' does not exist in the corpus; columns are: crawl_date, flagged, id",
        ),
        ("quality >= high", "compares number column quality with 'high'; use a number"),
        ("site == 3", "compares text column site with 3; use text"),
        ("flagged > true", "is true/false; use == or !="),
        ("crawl_date > 'yesterday'", "'yesterday' is not an ISO date"),
    ],
)
def test_predicates_are_checked_against_the_schema(text: str, message: str) -> None:
    with pytest.raises(MixError) as error:
        check_predicate(parse_predicate(text, "domains.web.where"), SCHEMA, "domains.web.where")
    assert message in str(error.value) and str(error.value).startswith("domains.web.where: ")
