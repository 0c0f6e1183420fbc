"""The SQL catalogue: every statement is loaded by name and none is built from strings."""

from __future__ import annotations

from typing import get_args

import pytest

from sqlxmq_py.sql import QueryName, parse_queries, query


def test_every_query_name_resolves() -> None:
    for name in get_args(QueryName):
        assert query(name).strip()


def test_comments_are_not_part_of_statements() -> None:
    text = "-- name: a\n-- explains a\nSELECT 1\n\n-- name: b\nSELECT 2 -- trailing stays\n"
    assert parse_queries(text) == {"a": b"SELECT 1", "b": b"SELECT 2 -- trailing stays"}


def test_a_name_defined_twice_is_an_error() -> None:
    with pytest.raises(ValueError, match="twice"):
        parse_queries("-- name: a\nSELECT 1\n-- name: a\nSELECT 2\n")
