"""The current definition of every table, index, sequence, SQL function and trigger, as the
replayed migrations leave them: generated into ``sqlxmq_py/sql/schema.sql``, so that one file
answers "what does ``mq_insert`` do now?" without reading the migrations in order.

Regenerate it after changing a migration (a test fails while it is stale)::

    python -m sqlxmq_py.schema --dsn postgresql://localhost/postgres

It migrates a scratch database on that server, describes its schema and drops it. With
``--check``, it only says whether the file is current.
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from collections.abc import Sequence
from itertools import starmap
from pathlib import Path
from typing import Any, NamedTuple

import psycopg
from psycopg import sql

from .migrate import migrate
from .sql import query

__all__ = ["HEADER", "SCHEMA_FILE", "describe_schema", "main", "render_schema"]

SCHEMA_FILE = Path(__file__).parent / "sql" / "schema.sql"
"""Where the generated schema lives (shipped with the package)."""

REGENERATE = "python -m sqlxmq_py.schema --dsn <DSN>"
"""The command that rewrites :data:`SCHEMA_FILE`."""

HEADER = f"""\
-- The sqlxmq_py schema as the migrations (migrations/*.sql, applied in order) leave it: every
-- table, sequence, index, function and trigger, in a stable order, without owners or grants.
-- Generated: do not edit. Change a migration, then run {REGENERATE}
"""

_KINDS = {1: "tables", 2: "sequences", 3: "indexes", 4: "functions", 5: "triggers"}


class _ObjectRow(NamedTuple):
    """A row of ``schema_objects``: one object's kind (the section), name and definition."""

    kind: int
    name: str
    ddl: str


def render_schema(rows: Sequence[tuple[Any, ...]]) -> str:
    """The text of the schema file for rows of ``schema_objects`` (pure)."""
    parts = [HEADER]
    kind = None
    for row in starmap(_ObjectRow, rows):
        if row.kind != kind:
            kind = row.kind
            parts.append(f"\n-- {_KINDS[kind]}\n")
        lines = [line.rstrip() for line in row.ddl.strip().splitlines()]
        parts.append("\n" + "\n".join(lines) + "\n")
    return "".join(parts)


def describe_schema(conn: psycopg.Connection[Any]) -> str:
    """The schema file's text for the database ``conn`` is connected to (its current schema)."""
    return render_schema(conn.execute(query("schema_objects")).fetchall())


def _scratch_schema(dsn: str) -> str:
    """Migrates a new database on the server of ``dsn``, describes it and drops it."""
    name = f"sqlxmq_schema_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            with psycopg.connect(dsn, dbname=name) as conn:
                migrate(conn)
                conn.commit()
                return describe_schema(conn)
        finally:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def main(argv: Sequence[str] | None = None) -> int:
    """Regenerates (or, with ``--check``, checks) :data:`SCHEMA_FILE`; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m sqlxmq_py.schema", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--dsn",
        default=os.environ.get("SQLXMQ_DSN", "postgresql:///postgres"),
        help="a server where a scratch database may be created (default $SQLXMQ_DSN)",
    )
    parser.add_argument("--check", action="store_true", help="only check the file is current")
    args = parser.parse_args(argv)
    text = _scratch_schema(args.dsn)
    current = SCHEMA_FILE.read_text(encoding="utf-8") if SCHEMA_FILE.exists() else ""
    if args.check:
        if current != text:
            print(f"{SCHEMA_FILE} is stale: run {REGENERATE} (any server)", file=sys.stderr)
            return 1
        return 0
    if current != text:
        SCHEMA_FILE.write_text(text, encoding="utf-8")
        print(f"wrote {SCHEMA_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
