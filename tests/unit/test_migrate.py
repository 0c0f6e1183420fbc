"""Which migrations are pending, computed without a database."""

from __future__ import annotations

import pytest

from sqlxmq_py import MigrationError
from sqlxmq_py.migrate import Migration, checksum, pending_migrations


def test_pending_migrations_is_pure() -> None:
    a = Migration(name="0001_a.sql", sql=b"select 1", checksum=checksum(b"select 1"))
    b = Migration(name="0002_b.sql", sql=b"select 2", checksum=checksum(b"select 2"))
    assert pending_migrations([a, b], {}) == [a, b]
    assert pending_migrations([a, b], {a.name: a.checksum}) == [b]
    with pytest.raises(MigrationError, match=r"0001_a\.sql"):
        pending_migrations([a, b], {a.name: checksum(b"select 1 -- edited")})
    assert checksum(b"a\r\nb") == checksum(b"a\nb")  # line endings do not count
