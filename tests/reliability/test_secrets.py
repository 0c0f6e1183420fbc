"""A DSN password never appears in logs or error messages, whether the password is right or
wrong, on a private server whose pg_hba.conf requires passwords (scram-sha-256)."""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
import structlog
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from sqlxmq_py import CurrentJob, JobRegistry, exists, job, migrate

from ..helpers import wait_until
from .conftest import PrivateServer

SECRET = "s3cr3t-Zq9"  # in both passwords: no text we capture may contain it
RIGHT = f"{SECRET} p@ss'w\"rd%20/?#="  # characters that need quoting in a URL
WRONG = f"wrong-{SECRET}"


@dataclass(frozen=True)
class Dsns:
    """Connection strings of the role ``app``, in URL and key=value form."""

    right: list[str]
    wrong: list[str]


@pytest.fixture
def dsns(private_server: PrivateServer) -> Dsns:
    """A role with a password, a database it owns, and a server that insists on passwords."""
    with psycopg.connect(private_server.admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE app LOGIN PASSWORD {}").format(sql.Literal(RIGHT)))
        conn.execute("CREATE DATABASE appdb OWNER app")
    # the superuser keeps trust (to set up and inspect); everyone else needs the password
    (private_server.pgdata / "pg_hba.conf").write_text(
        "local all postgres trust\nlocal all all scram-sha-256\n"
    )
    private_server.reload()
    socket_dir = str(private_server.server.get_postmaster_info().socket_dir)

    def forms(password: str) -> list[str]:
        url = f"postgresql://app:{quote(password, safe='')}@/appdb?host={quote(socket_dir)}"
        keywords = make_conninfo(host=socket_dir, dbname="appdb", user="app", password=password)
        return [url, keywords]

    return Dsns(right=forms(RIGHT), wrong=forms(WRONG))


@contextmanager
def all_logs(caplog: pytest.LogCaptureFixture) -> Iterator[list[Any]]:
    """Captures the library's structlog events and every stdlib log record (psycopg_pool's
    included), at every level."""
    captured: list[Any] = []
    with caplog.at_level(logging.DEBUG), structlog.testing.capture_logs() as events:
        yield captured
    captured.extend(events)
    captured.extend(f"{r.name} {r.levelname} {r.getMessage()}" for r in caplog.records)


def error_text(exc: BaseException) -> str:
    """Everything an error shows: message, chained causes and traceback."""
    return "".join(traceback.format_exception(exc)) + repr(exc)


def assert_no_secret(*texts: object) -> None:
    for text in texts:
        assert SECRET not in repr(text)
        assert quote(SECRET, safe="") not in repr(text)


def test_password_never_appears_in_migrate_logs_or_errors(
    dsns: Dsns, caplog: pytest.LogCaptureFixture
) -> None:
    errors: list[BaseException] = []
    with all_logs(caplog) as logs:
        for dsn in dsns.wrong:
            with pytest.raises(psycopg.OperationalError) as caught:
                psycopg.connect(dsn)
            errors.append(caught.value)
            assert "password authentication failed" in str(caught.value)
            with ConnectionPool(dsn, open=False, timeout=1.0, name="wrong") as pool:
                pool.open(wait=False)
                with pytest.raises(psycopg.OperationalError) as caught:
                    migrate(pool)
                errors.append(caught.value)
        for dsn in dsns.right:
            with psycopg.connect(dsn, autocommit=True) as conn:
                migrate(conn)
            with ConnectionPool(dsn, min_size=1, name="right") as pool:
                assert migrate(pool) == []
    assert logs  # something was logged, and checked
    assert_no_secret(logs, *[error_text(e) for e in errors])


@job
async def noop(current_job: CurrentJob) -> None:
    pass


async def test_password_never_appears_in_runner_logs_even_when_it_reconnects(
    dsns: Dsns, private_server: PrivateServer, caplog: pytest.LogCaptureFixture
) -> None:
    with psycopg.connect(dsns.right[0], autocommit=True) as conn:
        migrate(conn)
    admin = private_server.dsn("appdb")
    with all_logs(caplog) as logs:
        for dsn in dsns.right:
            handle = await JobRegistry([noop]).runner(dsn).set_poll_interval(0.2).set_lease(1).run()
            try:
                with psycopg.connect(admin, autocommit=True) as db:
                    first = noop.builder().spawn(db)
                    await wait_until(lambda: not exists(db, first))  # noqa: B023
                    # every runner connection is cut and must log in again with the password
                    db.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE usename = 'app'"
                    )
                    second = noop.builder().spawn(db)
                    await wait_until(lambda: not exists(db, second), timeout=15)  # noqa: B023
            finally:
                await handle.stop()
    events = [e for e in logs if isinstance(e, dict)]
    assert {"runner_started", "listener_lost", "runner_stopped"} <= {e["event"] for e in events}
    assert_no_secret(logs)


@pytest.mark.parametrize("given", ["dsn", "pool"])
async def test_runner_with_a_wrong_password_fails_fast_saying_why(
    dsns: Dsns, caplog: pytest.LogCaptureFixture, given: str
) -> None:
    with psycopg.connect(dsns.right[0], autocommit=True) as conn:
        migrate(conn)
    wrong = dsns.wrong[0]
    pool: AsyncConnectionPool[Any] | None = None
    if given == "pool":  # e.g. the password was rotated under an application's pool
        pool = AsyncConnectionPool(wrong, open=False, name="application")
        await pool.open(wait=False)
    caught: BaseException | None = None
    with all_logs(caplog) as logs:
        try:
            handle = await asyncio.wait_for(
                JobRegistry([noop]).runner(pool or wrong).run(), timeout=10
            )
            await handle.stop()
        except TimeoutError as exc:
            caught = exc
            pytest.fail("run() neither started nor failed within 10 s")
        except Exception as exc:
            caught = exc
        finally:
            if pool is not None:
                await pool.close()
    assert caught is not None, "the runner started with a wrong password"
    assert "password authentication failed" in error_text(caught)  # says why
    assert_no_secret(logs, error_text(caught))


async def test_password_never_appears_when_the_runners_dsn_cannot_be_parsed(
    dsns: Dsns, caplog: pytest.LogCaptureFixture
) -> None:
    # a password with a bare "%" pasted into a URL: libpq's parse error quotes the token
    unparsable = dsns.right[0].replace(quote(RIGHT, safe=""), f"{SECRET}%zz")
    caught: BaseException | None = None
    with all_logs(caplog) as logs:
        try:
            handle = await asyncio.wait_for(JobRegistry([noop]).runner(unparsable).run(), 10)
            await handle.stop()
        except Exception as exc:
            caught = exc
    assert caught is not None
    assert_no_secret(logs, error_text(caught))
    assert not isinstance(caught, TimeoutError), "run() neither started nor failed within 10 s"
