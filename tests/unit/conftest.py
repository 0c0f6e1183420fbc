"""The fast stage: tests of pure logic, with no database and no embedded server.

``pytest tests/unit`` answers in seconds. Every database fixture of the suite is overridden here
to fail the test that asks for it, so that a test needing PostgreSQL cannot slip in (it belongs
beside the code it tests, outside tests/unit) and the session never starts a server.
"""

from __future__ import annotations

from typing import NoReturn

import pytest

_DATABASE_FIXTURES = (
    "server_dsn",
    "server_version",
    "template_db",
    "app_role",
    "owner_dsn",
    "dsn",
    "empty_dsn",
    "conn",
    "aconn",
    "pool",
    "apool",
    "db",
    "is_embedded",
    "runner",
    "processes",
    "sqlxmq_server_dsn",
    "sqlxmq_template_database",
    "sqlxmq_dsn",
    "sqlxmq_conn",
    "sqlxmq_aconn",
    "sqlxmq_apool",
)


def _refuse(name: str) -> NoReturn:
    pytest.fail(
        f"tests/unit needs no database: fixture {name!r} is refused here (move the test out of "
        "tests/unit, beside the tests that use a database)",
        pytrace=False,
    )


def _refusing(name: str) -> object:
    @pytest.fixture(name=name)
    def fixture() -> NoReturn:
        _refuse(name)

    return fixture


for _name in _DATABASE_FIXTURES:
    globals()[f"_refused_{_name}"] = _refusing(_name)
