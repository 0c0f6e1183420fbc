"""The library's structlog logger and log-safety helpers.

The library never configures structlog; events have stable snake_case names and keys.
"""

from __future__ import annotations

from typing import Any

import structlog
from psycopg.conninfo import conninfo_to_dict, make_conninfo

__all__ = ["logger", "redact_conninfo"]

logger: Any = structlog.get_logger("sqlxmq_py")


def redact_conninfo(conninfo: str) -> str:
    """The connection string without its password, safe to log or show."""
    try:
        params = conninfo_to_dict(conninfo)
    except Exception:  # an unparsable string may still hold a secret: show nothing of it
        return "<unparsable connection string>"
    if "password" in params:
        params["password"] = "********"  # noqa: S105 - a mask, not a password
    return make_conninfo(**{k: str(v) for k, v in params.items()})
