"""``sqlxmq migrate``: apply the schema, or print it as one SQL script."""

from __future__ import annotations

import argparse
import sys

from ..migrate import load_migrations, migrate, migration_script
from ._common import EXIT_OK, Commands, Context, add_command
from ._output import print_json

__all__ = ["register"]


def register(commands: Commands) -> None:
    """Adds the ``migrate`` command."""
    parser = add_command(
        commands,
        "migrate",
        summary="apply the schema migrations (or print them as SQL)",
        description=(
            "Applies the pending schema migrations to the database, each in its own\n"
            "transaction, under an advisory lock (safe to run from several deploys at once).\n"
            "It is idempotent: an up-to-date database is left alone."
        ),
    )
    parser.add_argument(
        "--sql",
        action="store_true",
        help="print all migrations as one SQL script instead (no database needed); the script "
        "records itself in mq_migrations, so it mixes with `sqlxmq migrate`",
    )
    parser.set_defaults(handler=run_migrate)


def run_migrate(ctx: Context, args: argparse.Namespace) -> int:
    """Applies or prints the migrations."""
    if args.sql:
        sys.stdout.write(migration_script())
        return EXIT_OK
    with ctx.connect() as conn:
        applied = migrate(conn)
    total = len(load_migrations())
    if ctx.json:
        print_json({"applied": applied, "migrations": total, "database": ctx.database()})
    elif applied:
        print(f"Applied {len(applied)} migration(s) to {ctx.database()}:")
        for name in applied:
            print(f"  {name}")
    else:
        print(f"The schema is up to date ({total} migrations) on {ctx.database()}.")
    return EXIT_OK
