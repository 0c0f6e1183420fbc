"""FastAPI: a request spawns in its own transaction; the lifespan runner runs the job."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from fastapi import FastAPI, Request

from sqlxmq_py import exists
from sqlxmq_py.admin import job_status
from sqlxmq_py.integrations.fastapi import Pool, get_runner, sqlxmq_lifespan
from sqlxmq_py.metrics import metrics_asgi_app

from ..helpers import count_jobs, wait_until
from .asgi import serve
from .fastapi_app import SCHEMA, create_app


def welcomed(db: psycopg.Connection[Any], email: str) -> bool | None:
    row = db.execute("SELECT welcomed FROM users WHERE email = %s", (email,)).fetchone()
    return None if row is None else bool(row[0])


async def test_request_spawns_in_its_transaction_and_the_lifespan_runner_runs_it(
    dsn: str, db: psycopg.Connection[Any]
) -> None:
    db.execute(SCHEMA)
    async with serve(create_app(dsn)) as client:
        response = await client.post("/signup", json={"email": "ada@example.com"})
        assert response.status_code == 200
        job_id = uuid.UUID(response.json()["job_id"])
        assert welcomed(db, "ada@example.com") is not None  # committed before the response
        await wait_until(lambda: welcomed(db, "ada@example.com") is True)
        await wait_until(lambda: not exists(db, job_id))
    # the lifespan stopped the runner on shutdown
    assert db.execute("SELECT count(*) FROM mq_listeners").fetchone() == (0,)


async def test_a_request_that_fails_drops_its_job(dsn: str, db: psycopg.Connection[Any]) -> None:
    db.execute(SCHEMA)
    async with serve(create_app(dsn, run_jobs=False)) as client:
        response = await client.post("/signup", json={"email": "bob@example.invalid"})
        assert response.status_code == 422
        assert welcomed(db, "bob@example.invalid") is None
        assert count_jobs(db) == 0  # spawned, then rolled back with the user
        ok = await client.post("/signup", json={"email": "cy@example.com"})
        assert ok.status_code == 200
    job_id = uuid.UUID(ok.json()["job_id"])
    status = job_status(db, job_id)
    assert status is not None
    assert status.state == "ready"  # no runner in this app: a worker elsewhere runs it


async def test_lifespan_state_gives_the_pool_and_runner(dsn: str) -> None:
    app = FastAPI(lifespan=sqlxmq_lifespan(None, dsn))

    @app.get("/state")
    async def state(request: Request, pool: Pool) -> dict[str, Any]:
        async with pool.connection() as conn:
            row = await (await conn.execute("SELECT 41 + 1")).fetchone()
        return {"answer": row[0] if row else None, "runner": get_runner(request) is not None}

    async with serve(app) as client:
        assert (await client.get("/state")).json() == {"answer": 42, "runner": False}


async def test_metrics_route_serves_the_queue(dsn: str, db: psycopg.Connection[Any]) -> None:
    db.execute(SCHEMA)
    app = create_app(dsn, run_jobs=False)
    app.add_route("/metrics", metrics_asgi_app(dsn))
    async with serve(app) as client:
        assert (await client.post("/signup", json={"email": "di@example.com"})).status_code == 200
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert 'sqlxmq_queue_jobs{channel="emails",state="ready"} 1.0' in response.text
