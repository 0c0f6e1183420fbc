"""The live workers in the HTTP API (``GET /api/workers``) and on the dashboard (the Workers
page, and the runner of a running job on its page)."""

from __future__ import annotations

import asyncio
import html
import os
import socket
from typing import Any

import httpx
import psycopg

import sqlxmq_py
from sqlxmq_py import CurrentJob, job
from sqlxmq_py.web.fleet import Workers

from .conftest import Runner, leased_job

EVIL = "<script>alert(1)</script>"


async def test_api_and_page_list_the_runner_and_escape_its_channels(
    client: httpx.AsyncClient, runner: Runner, db: psycopg.Connection[Any]
) -> None:
    started = asyncio.Event()
    release = asyncio.Event()

    @job(channel_name=EVIL)
    async def blocker(current_job: CurrentJob) -> None:
        started.set()
        await release.wait()

    async with runner([blocker], concurrency=(1, 2), channel_names=[EVIL]):
        job_id = blocker.builder().spawn(db)
        await started.wait()
        try:
            answer = await client.get("/api/workers")
            page = await client.get("/workers")
            job_page = await client.get(f"/jobs/{job_id}")
        finally:
            release.set()
    assert answer.status_code == 200
    body = answer.json()
    assert Workers.model_validate_json(answer.text).model_dump(mode="json") == body
    (worker,) = body["workers"]
    assert worker["host"] == socket.gethostname()
    assert worker["pid"] == os.getpid()
    assert worker["version"] == sqlxmq_py.__version__
    assert worker["channel_names"] == [EVIL]
    assert (worker["min_concurrency"], worker["max_concurrency"]) == (1, 2)
    assert worker["running"] == 1
    assert worker["stale"] is False

    assert page.status_code == 200
    assert "<script>alert" not in page.text
    assert html.escape(EVIL, quote=False) in page.text
    assert worker["id"] in page.text
    assert 'href="/workers" aria-current="page"' in page.text

    assert job_page.status_code == 200
    assert "<script>alert" not in job_page.text
    shown = job_page.text.split('id="job-worker">', 1)[1].split("</dd>", 1)[0]
    assert f"{socket.gethostname()} pid {os.getpid()}" in shown
    assert worker["id"] in shown
    assert 'id="job-running-since"' in job_page.text

    assert (await client.get("/api/workers")).json() == {"workers": []}  # stop() unregisters


async def test_no_runner_no_workers(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/workers")).json() == {"workers": []}
    page = await client.get("/workers")
    assert page.status_code == 200
    assert "No runner is announced" in page.text


async def test_a_stale_runner_is_flagged(
    client: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    db.execute(
        "INSERT INTO mq_listeners (id, host, pid, heartbeat_at) "
        "VALUES (gen_random_uuid(), %s, 7, now() - interval '2 minutes')",
        (EVIL,),
    )
    (worker,) = (await client.get("/api/workers")).json()["workers"]
    assert worker["stale"] is True
    assert worker["host"] == EVIL
    page = (await client.get("/workers")).text
    assert ">stale</span>" in page
    assert "<script>alert" not in page


async def test_the_page_of_a_pulled_job_says_no_runner_runs_it(
    client: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    job_id = leased_job(db)
    page = (await client.get(f"/jobs/{job_id}")).text
    assert "pulled by application code (no runner)" in page
    assert 'id="job-running-since"' in page
