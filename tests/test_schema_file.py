"""sqlxmq_py/sql/schema.sql is the schema the replayed migrations leave: regenerated, not
edited by hand, and checked here against a freshly migrated database."""

from __future__ import annotations

from typing import Any

import psycopg

from sqlxmq_py.schema import HEADER, REGENERATE, SCHEMA_FILE, describe_schema, render_schema


def test_the_schema_file_matches_the_migrated_database(conn: psycopg.Connection[Any]) -> None:
    described = describe_schema(conn)
    stored = SCHEMA_FILE.read_text(encoding="utf-8")
    assert described == stored, f"{SCHEMA_FILE} is stale: run {REGENERATE}"


def test_the_schema_file_defines_what_the_code_calls() -> None:
    text = SCHEMA_FILE.read_text(encoding="utf-8")
    for definition in (
        "CREATE TABLE mq_jobs (",
        "CREATE UNLOGGED TABLE mq_listeners (",
        "CREATE OR REPLACE FUNCTION public.mq_insert(",
        "CREATE UNIQUE INDEX mq_jobs_job_key_idx",
        "CREATE SEQUENCE mq_ord_seq",
    ):
        assert definition in text


def test_a_changed_schema_makes_the_description_differ(owner_dsn: str) -> None:
    with psycopg.connect(owner_dsn) as conn:  # the owner: the test role may not alter tables
        before = describe_schema(conn)
        conn.execute("CREATE FUNCTION mq_extra_fn() RETURNS int LANGUAGE sql AS 'SELECT 1'")
        conn.execute("ALTER TABLE mq_stats ADD COLUMN extra int")
        after = describe_schema(conn)
    assert "mq_extra_fn()" in after
    assert "mq_extra_fn()" not in before
    assert "    extra integer" in after


def test_rendering_is_stable_and_sectioned() -> None:
    rows = [(1, "t", "CREATE TABLE t (\n    a int   \n);\n"), (4, "f()", "CREATE FUNCTION f()")]
    text = render_schema(rows)
    assert text.startswith(HEADER)
    assert "\n-- tables\n\nCREATE TABLE t (\n    a int\n);\n" in text
    assert text.endswith("\n-- functions\n\nCREATE FUNCTION f()\n")
