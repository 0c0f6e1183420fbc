"""The PgBouncer these tests run: missing, the tests fail saying how to install it."""

from __future__ import annotations

import shutil

import pytest

from . import conftest


def test_a_missing_pgbouncer_fails_the_tests_with_the_install_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(shutil, "which", lambda *args, **kwargs: None)
    with pytest.raises(pytest.fail.Exception, match="apt-get install pgbouncer"):
        conftest.pgbouncer_binary()


def test_the_pgbouncer_fixture_drops_root(pgbouncer: conftest.StartPgBouncer) -> None:
    """PgBouncer refuses to run as root: as root the fixture runs it as another user."""
    bouncer = pgbouncer()
    with open(f"/proc/{bouncer.process.pid}/status") as status:
        uid = next(line.split()[1] for line in status if line.startswith("Uid:"))
    assert uid != "0"
