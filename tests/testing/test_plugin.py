"""The ``sqlxmq`` pytest plugin, as a user meets it: a test file of their own, run by pytest in
a subprocess, with the plugin loaded by its entry point or by name."""

from __future__ import annotations

import configparser
import json
import os
from pathlib import Path

import psycopg
import pytest

pytest_plugins = ["pytester"]

USER_TESTS = """
import json
import os
from dataclasses import dataclass

import psycopg
import pytest

from sqlxmq_py import CurrentJob, JobRegistry, job
from sqlxmq_py.testing import assert_spawned, drain, refute_spawned


@pytest.fixture(scope="session")
def sqlxmq_setup_database():
    def setup(conn):
        conn.execute("CREATE TABLE welcomed (email text PRIMARY KEY)")

    return setup


@dataclass
class Welcome:
    email: str


@job(channel_name="emails")
async def welcome(current_job: CurrentJob[Welcome]) -> str:
    async with current_job.pool.connection() as conn:
        await conn.execute("INSERT INTO welcomed VALUES (%s)", (current_job.payload.email,))
    return "welcomed"


async def signup(conn, email):  # the application code under test
    await welcome.builder().set_json(Welcome(email)).spawn(conn)


@pytest.fixture
def report(sqlxmq_dsn, sqlxmq_template_database):
    yield
    # after the connection's rollback, before the database is dropped
    with psycopg.connect(sqlxmq_dsn) as conn:
        counts = [
            conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("mq_jobs", "mq_payloads", "welcomed")
        ]
        db = conn.info.dbname
    line = {"db": db, "template": sqlxmq_template_database, "counts": counts}
    with open(os.environ["KIT_REPORT"], "a") as out:
        out.write(json.dumps(line) + "\\n")


@pytest.mark.asyncio
async def test_signup_welcomes(report, sqlxmq_aconn):
    await signup(sqlxmq_aconn, "ada@example.com")
    found = await assert_spawned(sqlxmq_aconn, welcome, payload=Welcome("ada@example.com"))
    assert found.payload.email == "ada@example.com"
    ran = await drain(sqlxmq_aconn, JobRegistry([welcome]))
    assert [(r.outcome, r.result) for r in ran] == [("completed", "welcomed")]
    await refute_spawned(sqlxmq_aconn, welcome)
    cur = await sqlxmq_aconn.execute("SELECT email FROM welcomed")
    assert await cur.fetchall() == [("ada@example.com",)]


@pytest.mark.asyncio
async def test_each_test_has_a_database_of_its_own(report, sqlxmq_aconn):
    await refute_spawned(sqlxmq_aconn, welcome)


def test_sync_connection(report, sqlxmq_conn):
    welcome.builder().set_json(Welcome("bob@example.com")).spawn(sqlxmq_conn)
    assert assert_spawned(sqlxmq_conn, welcome).state == "ready"
    sqlxmq_conn.commit()  # into the test's own database, dropped after it
"""

INI = """
[pytest]
asyncio_mode = strict
asyncio_default_fixture_loop_scope = function
"""

BY_NAME = ("-p", "no:sqlxmq", "-p", "sqlxmq_py.testing.plugin")
"""Loads the plugin by module name (blocking its entry point, should it be installed)."""


def databases(server_dsn: str) -> set[str]:
    """The plugin's databases on the server (others may come and go: the server is shared)."""
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'sqlxmq_kit_%'")
        return {name for (name,) in rows.fetchall()}


@pytest.fixture
def user_project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user's test file; ``KIT_REPORT`` collects what its ``report`` fixture saw."""
    pytester.makefile(".ini", pytest=INI)
    pytester.makepyfile(test_signup=USER_TESTS)
    report = pytester.path / "report.jsonl"
    monkeypatch.setenv("KIT_REPORT", str(report))
    return report


def check_report(report: Path, server_dsn: str) -> None:
    lines = [json.loads(line) for line in report.read_text().splitlines()]
    assert [line["counts"] for line in lines] == [
        [0, 0, 0],  # drained and rolled back: nothing left
        [0, 0, 0],  # a fresh database: nothing of the first test's
        [1, 1, 0],  # committed, in its own database
    ]
    names = {line["db"] for line in lines}
    assert len(names) == 3
    (template,) = {line["template"] for line in lines}
    assert not (names | {template}) & databases(server_dsn)  # all dropped after the session


def test_a_users_tests_get_a_fresh_database_each_and_a_clean_one_after(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    user_project: Path,
    server_dsn: str,
) -> None:
    monkeypatch.setenv("SQLXMQ_TEST_DSN", server_dsn)
    result = pytester.runpytest_subprocess(*BY_NAME, "-p", "no:cacheprovider", "-W", "error")
    result.assert_outcomes(passed=3)
    check_report(user_project, server_dsn)


def test_installing_the_package_registers_the_plugin(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    user_project: Path,
    server_dsn: str,
    repo_root: Path,
    tmp_path: Path,
) -> None:
    # the entry point as setup.cfg declares it, in a distribution's metadata on the path
    config = configparser.ConfigParser()
    config.read(repo_root / "setup.cfg")
    assert "sqlxmq_py.testing" in config["options"]["packages"].split()
    declared = config["options.entry_points"]["pytest11"].strip()
    assert declared == "sqlxmq = sqlxmq_py.testing.plugin"
    dist = tmp_path / "site" / "sqlxmq_kit_probe-0.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: sqlxmq-kit-probe\nVersion: 0.0\n")
    (dist / "entry_points.txt").write_text(f"[pytest11]\n{declared}\n")
    # its files, as an installed wheel lists them: pytest then rewrites the package's asserts,
    # which must import cleanly (-W error: no "already imported" warning)
    (dist / "RECORD").write_text("sqlxmq_py/__init__.py,,\nsqlxmq_py/testing/plugin.py,,\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(dist.parent), str(repo_root)]))
    monkeypatch.setenv("SQLXMQ_TEST_DSN", server_dsn)

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "error")
    result.assert_outcomes(passed=3)
    check_report(user_project, server_dsn)


def test_without_a_dsn_the_embedded_server_is_used(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, user_project: Path
) -> None:
    monkeypatch.delenv("SQLXMQ_TEST_DSN", raising=False)
    result = pytester.runpytest_subprocess(*BY_NAME, "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)
    hosts = {json.loads(line)["db"] for line in user_project.read_text().splitlines()}
    assert len(hosts) == 3


def test_an_unreachable_server_is_an_error_not_a_skip(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, user_project: Path
) -> None:
    monkeypatch.setenv("SQLXMQ_TEST_DSN", "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2")
    result = pytester.runpytest_subprocess(*BY_NAME, "-p", "no:cacheprovider")
    result.assert_outcomes(errors=3)
    result.stdout.fnmatch_lines(["*OperationalError*"])


def test_the_plugin_does_nothing_for_tests_that_do_not_ask(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a server nobody listens on: had the plugin touched a database, the run would error
    # (counting the server's databases before and after would see other sessions' too)
    monkeypatch.setenv("SQLXMQ_TEST_DSN", "postgresql://nobody@127.0.0.1:1/nothing")
    pytester.makefile(".ini", pytest=INI)
    pytester.makepyfile(test_other="def test_other():\n    assert True\n")
    result = pytester.runpytest_subprocess(*BY_NAME, "-p", "no:cacheprovider", "--setup-show")
    result.assert_outcomes(passed=1)
    assert "sqlxmq" not in result.stdout.str()  # no fixture set up, no hook output
    listed = pytester.runpytest_subprocess(*BY_NAME, "-p", "no:cacheprovider", "--fixtures")
    listed.stdout.fnmatch_lines(["sqlxmq_dsn*", "*A database for this test only*"])
