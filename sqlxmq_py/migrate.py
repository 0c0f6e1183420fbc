"""Schema migrations: numbered plain-SQL files applied in order, each recorded with a checksum.

``migrate()`` works in one transaction (or inside the caller's, if its connection is in one)
that holds a transaction-level advisory lock, so concurrent calls wait for each other and the
second finds nothing left to do; the lock never outlives the transaction, even behind a
transaction pooler. Each file runs in a savepoint of it: a file that fails leaves nothing
applied. A file whose content changed after it was applied is refused with
:class:`~sqlxmq_py.MigrationError`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, overload

import psycopg
from psycopg import sql
from psycopg.rows import scalar_row
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from ._connections import AnyConnection, AsyncConnectionLike, SyncConnectionLike, is_async
from ._logging import logger
from .errors import MigrationError
from .sql import query

__all__ = ["Migration", "load_migrations", "migrate", "migration_script", "pending_migrations"]

_FILE_NAME = re.compile(r"^\d{4}_[a-z0-9_]+\.sql$")


@dataclass(frozen=True, kw_only=True)
class Migration:
    """One migration file."""

    name: str
    sql: bytes
    checksum: str


def _migrations_dir() -> Traversable:
    packaged = resources.files("sqlxmq_py").joinpath("migrations")
    if packaged.is_dir():
        return packaged
    # a source checkout (editable install): the repository's top-level migrations/ folder
    return Path(__file__).resolve().parent.parent / "migrations"


def checksum(sql: bytes) -> str:
    """The checksum recorded for a migration (line endings normalised)."""
    return hashlib.sha256(sql.replace(b"\r\n", b"\n")).hexdigest()


def load_migrations() -> list[Migration]:
    """The migrations shipped with this version, in the order they apply."""
    files = sorted(
        (f for f in _migrations_dir().iterdir() if _FILE_NAME.match(f.name)),
        key=lambda f: f.name,
    )
    if not files:
        raise MigrationError("no migration files found: the package is incomplete")
    return [
        Migration(name=f.name, sql=f.read_bytes(), checksum=checksum(f.read_bytes())) for f in files
    ]


def migration_script() -> str:
    """All migrations as one SQL script, for teams that apply schema changes with other tools.

    The script records each migration in ``mq_migrations`` as ``migrate()`` would, so the two
    ways can be mixed.
    """
    record = sql.SQL("INSERT INTO mq_migrations (name, checksum) VALUES ({}, {});\n")
    parts = [query("migrations_create_table").decode() + ";\n"]
    for m in load_migrations():
        parts.append(f"-- {m.name}\n{m.sql.decode()}")
        parts.append(record.format(sql.Literal(m.name), sql.Literal(m.checksum)).as_string())
    return "\n".join(parts)


def pending_migrations(
    migrations: Sequence[Migration], applied: Mapping[str, str], target: str | None = None
) -> list[Migration]:
    """The migrations still to apply, given ``{name: checksum}`` of those already applied,
    up to and including ``target`` (a file name; None: all).

    Raises:
        MigrationError: an applied migration's file has changed since, or ``target`` is not a
            migration of this version.
    """
    if target is not None:
        names = [m.name for m in migrations]
        if target not in names:
            raise MigrationError(f"no migration named {target!r}; known: {names}")
        migrations = migrations[: names.index(target) + 1]
    known = {m.name for m in migrations}
    for m in migrations:
        recorded = applied.get(m.name)
        if recorded is not None and recorded != m.checksum:
            raise MigrationError(
                f"migration {m.name} was applied with checksum {recorded[:12]}… but the file "
                f"now has {m.checksum[:12]}…: migration files must never change once applied; "
                "restore the original file and add a new migration instead"
            )
    unknown = sorted(set(applied) - known)
    if unknown:
        logger.warning("unknown_migrations_applied", migrations=unknown)
    return [m for m in migrations if m.name not in applied]


def _migrate_sync(conn: psycopg.Connection[Any], target: str | None) -> list[str]:
    with conn.transaction():
        # a transaction-level lock: it ends with this transaction, so a pooled server session
        # (PgBouncer in transaction mode) is never left holding it
        conn.execute(query("migrations_lock"))
        with conn.cursor(row_factory=scalar_row) as cur:
            exists = cur.execute(query("migrations_table_exists")).fetchone()
        if not exists:
            conn.execute(query("migrations_create_table"))
        applied = dict(conn.execute(query("migrations_applied")).fetchall())
        pending = pending_migrations(load_migrations(), applied, target)
        for m in pending:
            try:
                with conn.transaction():
                    conn.execute(m.sql)
                    conn.execute(
                        query("migrations_record"), {"name": m.name, "checksum": m.checksum}
                    )
            except psycopg.Error as exc:
                raise MigrationError(f"migration {m.name} failed: {exc}") from exc
            logger.info("migration_applied", migration=m.name)
        return [m.name for m in pending]


async def _migrate_async(conn: psycopg.AsyncConnection[Any], target: str | None) -> list[str]:
    async with conn.transaction():
        await conn.execute(query("migrations_lock"))
        async with conn.cursor(row_factory=scalar_row) as scalar:
            exists = await (await scalar.execute(query("migrations_table_exists"))).fetchone()
        if not exists:
            await conn.execute(query("migrations_create_table"))
        cur = await conn.execute(query("migrations_applied"))
        applied = dict(await cur.fetchall())
        pending = pending_migrations(load_migrations(), applied, target)
        for m in pending:
            try:
                async with conn.transaction():
                    await conn.execute(m.sql)
                    await conn.execute(
                        query("migrations_record"), {"name": m.name, "checksum": m.checksum}
                    )
            except psycopg.Error as exc:
                raise MigrationError(f"migration {m.name} failed: {exc}") from exc
            logger.info("migration_applied", migration=m.name)
        return [m.name for m in pending]


async def _migrate_async_any(conn: AsyncConnectionLike, target: str | None) -> list[str]:
    if isinstance(conn, AsyncConnectionPool):
        async with conn.connection() as pooled:
            return await _migrate_async(pooled, target)
    return await _migrate_async(conn, target)


@overload
def migrate(conn: SyncConnectionLike, *, target: str | None = None) -> list[str]: ...


@overload
def migrate(
    conn: AsyncConnectionLike, *, target: str | None = None
) -> Coroutine[Any, Any, list[str]]: ...


def migrate(
    conn: AnyConnection, *, target: str | None = None
) -> list[str] | Coroutine[Any, Any, list[str]]:
    """Applies the pending migrations (up to and including ``target``, a file name, if given:
    for staged upgrades); returns the names of those applied. Idempotent.

    Raises:
        MigrationError: a file failed to apply, an applied file has changed, or ``target``
            is unknown.
    """
    if is_async(conn):
        return _migrate_async_any(conn, target)
    if isinstance(conn, ConnectionPool):
        with conn.connection() as pooled:
            return _migrate_sync(pooled, target)
    return _migrate_sync(conn, target)
