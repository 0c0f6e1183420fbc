"""The public names are exactly those exported, and the errors form the documented tree."""

from __future__ import annotations

import types

import sqlxmq_py
from sqlxmq_py import errors


def test_public_names_are_exported() -> None:
    public = {
        name
        for name in dir(sqlxmq_py)
        if not name.startswith("_") and not isinstance(getattr(sqlxmq_py, name), types.ModuleType)
    }
    assert public == set(sqlxmq_py.__all__)
    for name in sqlxmq_py.__all__:
        assert getattr(sqlxmq_py, name) is not None


def test_error_tree() -> None:
    assert issubclass(errors.ConfigurationError, ValueError)
    assert issubclass(errors.PayloadError, ValueError)
    assert issubclass(errors.DuplicateJobError, errors.ConfigurationError)
    assert issubclass(errors.MigrationError, errors.SchemaError)
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, errors.SqlxmqError)
        assert cls.__module__ == "sqlxmq_py"
        assert name in (errors.__doc__ or "")
