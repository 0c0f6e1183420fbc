"""A private PgBouncer for each test, in front of the test's server.

``pgbouncer(pool_mode=..., pool_size=...)`` starts one (in the foreground, as a subprocess with
an ini of its own in a temporary directory) and returns a :class:`PgBouncer`; it is stopped when
the test ends. PgBouncer must be installed (``apt-get install pgbouncer``): without it these
tests fail, they never skip.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import structlog
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from structlog.typing import EventDict

INSTALL = "apt-get install pgbouncer"
_START_TIMEOUT = 20.0


def pgbouncer_binary() -> str:
    """The pgbouncer executable: on PATH, else Debian's /usr/sbin (not on every user's PATH)."""
    found = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin")
    if found is None:
        pytest.fail(f"pgbouncer is not installed: these tests need it ({INSTALL})")
    return found


def free_port() -> int:
    """A TCP port nobody listens on now (PgBouncer cannot pick one itself)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _run_as(host: str) -> list[str]:
    """PgBouncer refuses to run as root ("PgBouncer should not run as root"): as root, ``-u``
    drops to the owner of the server's socket directory (the embedded server keeps its socket
    in its private data directory), else to ``nobody``."""
    if os.geteuid() != 0:
        return []
    user = "nobody"
    if host.startswith("/"):
        owner = os.stat(host).st_uid
        if owner != 0:
            user = pwd.getpwuid(owner).pw_name
    return ["-u", user]


@dataclass
class PgBouncer:
    """A running PgBouncer: ``dsn`` is the test database through it."""

    process: subprocess.Popen[bytes]
    host: str
    port: int
    directory: Path
    dsn: str
    pool_mode: str
    pool_size: int

    def through(self, direct_dsn: str) -> str:
        """``direct_dsn`` (a database of the same server) reached through this PgBouncer."""
        params = conninfo_to_dict(direct_dsn)
        return make_conninfo(
            host=self.host,
            port=str(self.port),
            dbname=str(params["dbname"]),
            user=str(params.get("user") or "postgres"),
        )

    def log(self) -> str:
        return (self.directory / "pgbouncer.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _ini(
    target: dict[str, Any], listen: str, port: int, directory: Path, pool_mode: str, size: int
) -> str:
    host = str(target.get("host") or "/var/run/postgresql")
    server = f"host={host} port={target.get('port') or 5432}"
    return "\n".join(
        [
            "[databases]",
            f"* = {server}",
            "[pgbouncer]",
            f"listen_addr = {listen}",
            f"listen_port = {port}",
            "unix_socket_dir =",
            "auth_type = trust",
            f"auth_file = {directory / 'users.txt'}",
            f"pool_mode = {pool_mode}",
            f"default_pool_size = {size}",
            "min_pool_size = 0",
            "reserve_pool_size = 0",
            "max_client_conn = 1000",
            "ignore_startup_parameters = extra_float_digits,options",
            "",
        ]
    )


def _accepting(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def start_pgbouncer(
    dsn: str,
    users: list[str],
    *,
    pool_mode: str = "transaction",
    pool_size: int = 2,
    listen: tuple[str, int] | None = None,
) -> PgBouncer:
    """Starts a PgBouncer in front of ``dsn``'s server and waits until it accepts
    connections: on 127.0.0.1 and a free port, or on ``listen`` (address, port)."""
    binary = pgbouncer_binary()
    target = conninfo_to_dict(dsn)
    directory = Path(tempfile.mkdtemp(prefix="sqlxmq-pgbouncer-"))
    directory.chmod(0o755)  # readable by the user PgBouncer drops to
    (directory / "users.txt").write_text("".join(f'"{u}" ""\n' for u in dict.fromkeys(users)))
    for attempt in range(3):  # the free port may be taken by someone else before we bind it
        host, port = listen or ("127.0.0.1", free_port())
        ini = directory / "pgbouncer.ini"
        ini.write_text(_ini(target, host, port, directory, pool_mode, pool_size))
        for f in directory.iterdir():
            f.chmod(0o644)
        with (directory / "pgbouncer.log").open("wb") as log:
            process = subprocess.Popen(
                [binary, *_run_as(str(target.get("host") or "")), str(ini)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        bouncer = PgBouncer(process, host, port, directory, "", pool_mode, pool_size)
        bouncer.dsn = bouncer.through(dsn)
        deadline = time.monotonic() + _START_TIMEOUT
        # "process up" is logged once it listens: a connection accepted before that may be
        # another program's, on a port taken since free_port() looked
        while process.poll() is None and not (
            "process up" in bouncer.log() and _accepting(host, port)
        ):
            if time.monotonic() > deadline:
                bouncer.stop()
                pytest.fail(f"pgbouncer did not accept connections:\n{bouncer.log()}")
            time.sleep(0.02)  # waiting for a listening socket that no one announces
        if process.poll() is None:
            return bouncer
        process.wait()
        if "Address already in use" not in bouncer.log() or listen or attempt == 2:
            pytest.fail(f"pgbouncer exited with {process.returncode}:\n{bouncer.log()}")
    raise AssertionError("unreachable")  # pragma: no cover


StartPgBouncer = Callable[..., PgBouncer]


@pytest.fixture
def pgbouncer(server_dsn: str, dsn: str) -> Iterator[StartPgBouncer]:
    """``pgbouncer(pool_mode="transaction", pool_size=2)`` starts a PgBouncer in front of the
    test database (``.dsn``; ``target=`` another database of the server); every one started is
    stopped when the test ends."""
    started: list[PgBouncer] = []
    users = [str(conninfo_to_dict(d).get("user") or "postgres") for d in (server_dsn, dsn)]

    def start(target: str | None = None, **options: Any) -> PgBouncer:
        bouncer = start_pgbouncer(target or dsn, users, **options)
        started.append(bouncer)
        return bouncer

    try:
        yield start
    finally:
        for bouncer in started:
            bouncer.stop()
            shutil.rmtree(bouncer.directory, ignore_errors=True)


def server_sessions(bouncer: PgBouncer) -> list[tuple[int, list[str]]]:
    """(backend pid, channels it LISTENs to) of every server session of ``bouncer``'s pool:
    one client per session, each holding a transaction, so that each gets a session of its
    own."""
    clients = [
        psycopg.connect(bouncer.dsn, prepare_threshold=None) for _ in range(bouncer.pool_size)
    ]
    try:
        found = []
        for client in clients:
            row = client.execute(
                "SELECT pg_backend_pid(), array(SELECT pg_listening_channels())"
            ).fetchone()
            assert row is not None
            found.append((int(row[0]), list(row[1])))
        return found
    finally:
        for client in clients:
            client.rollback()  # closed mid-transaction, PgBouncer would drop the session
            client.close()


class LogSignals:
    """A structlog processor (for ``capture_logs(processors=[...])``) that sets an
    ``asyncio.Event`` per event name when that event is logged, from any thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._events: dict[str, asyncio.Event] = {}

    def event(self, name: str) -> asyncio.Event:
        """Set once ``name`` has been logged (call on the loop)."""
        return self._events.setdefault(name, asyncio.Event())

    def __call__(self, _: object, __: str, event_dict: EventDict) -> EventDict:
        name = str(event_dict.get("event"))
        with contextlib.suppress(RuntimeError):  # the loop has closed
            self._loop.call_soon_threadsafe(lambda: self.event(name).set())
        return event_dict


@contextlib.asynccontextmanager
async def captured_logs() -> AsyncIterator[tuple[list[EventDict], LogSignals]]:
    """The library's log events while the block runs, and their signals."""
    signals = LogSignals(asyncio.get_running_loop())
    with structlog.testing.capture_logs(processors=[signals]) as logs:
        yield logs, signals


def events(logs: list[EventDict], name: str) -> list[EventDict]:
    return [e for e in logs if e["event"] == name]
