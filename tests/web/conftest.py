"""Fixtures of the web tests: the app on the test database (in process through httpx's
ASGITransport, or served by uvicorn on a free port of 127.0.0.1 for the browser), and helpers
that put jobs into known states with the real queue functions."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn
from starlette.applications import Starlette

from sqlxmq_py import JobBuilder
from sqlxmq_py.pull import fail, fetch
from sqlxmq_py.web import create_app

from ..helpers import Runner

__all__ = ["AUTH", "TOKEN", "Runner", "failed_job", "leased_job"]

TOKEN = "test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ERROR_TEXT = (
    "Traceback (most recent call last):\n"
    '  File "jobs.py", line 12, in resize\n'
    "    raise ValueError(msg)\n"
    "ValueError: image too large"
)


@pytest.fixture
async def app(dsn: str) -> AsyncIterator[Starlette]:
    """The app with a token, its lifespan running (its pool open)."""
    application = create_app(dsn, token=TOKEN, title="test queue")
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client talking to ``app`` in process."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


def failed_job(
    db: psycopg.Connection[Any],
    name: str = "resize",
    channel_name: str = "images",
    *,
    error: str = ERROR_TEXT,
    payload: object = None,
    ordered: bool = False,
) -> uuid.UUID:
    """A job that failed for good (no retries; its one attempt failed with ``error``)."""
    builder = JobBuilder(name).set_channel_name(channel_name).set_retries(0).set_ordered(ordered)
    if payload is not None:
        builder.set_json(payload)
    job_id = builder.spawn(db)
    (leased,) = fetch(db, [channel_name], limit=1)
    assert leased.id == job_id, "another job of this channel was ready"
    assert fail(db, leased, error) == "failed"
    return job_id


def leased_job(db: psycopg.Connection[Any], channel_name: str = "busy") -> uuid.UUID:
    """A job that is running (leased by a pull consumer for a minute)."""
    job_id = JobBuilder("work").set_channel_name(channel_name).spawn(db)
    (leased,) = fetch(db, [channel_name], limit=1, lease=60)
    assert leased.id == job_id
    return job_id


def free_socket() -> socket.socket:
    """A listening socket on a free port of 127.0.0.1 (handed to uvicorn: no port race)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock


class LiveServer:
    """The app served by uvicorn in a background thread."""

    def __init__(self, application: Any) -> None:
        self.sock = free_socket()
        host, port = self.sock.getsockname()
        self.url = f"http://{host}:{port}"
        config = uvicorn.Config(
            application, log_level="warning", ws="none", lifespan="on", access_log=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.sock.close()
        assert not self.thread.is_alive(), "uvicorn did not stop"


@pytest.fixture
def live_server(dsn: str) -> Iterator[LiveServer]:
    """The app (with ``TOKEN``) served on a free port of 127.0.0.1."""
    with LiveServer(create_app(dsn, token=TOKEN, title="test queue")) as server:
        yield server
