"""An example FastAPI app: signing up writes a user and spawns their welcome email in the
request's transaction; the lifespan runs the job runner."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

from sqlxmq_py import CurrentJob, JobRegistry, job
from sqlxmq_py.integrations.fastapi import Transaction, sqlxmq_lifespan

SCHEMA = "CREATE TABLE users (email text PRIMARY KEY, welcomed boolean NOT NULL DEFAULT false)"


@job(channel_name="emails")
async def send_welcome(current_job: CurrentJob) -> None:
    """'Sends' the email: marks the user welcomed, completing in the same transaction."""
    email = current_job.json()["email"]
    async with current_job.pool.connection() as conn, conn.transaction():
        await conn.execute("UPDATE users SET welcomed = true WHERE email = %s", (email,))
        await current_job.complete(conn)


registry = JobRegistry([send_welcome])


class Signup(BaseModel):
    email: str


def create_app(dsn: str, *, run_jobs: bool = True) -> FastAPI:
    """The app; ``run_jobs=False`` only spawns (a worker elsewhere runs the jobs)."""
    app = FastAPI(
        lifespan=sqlxmq_lifespan(
            registry if run_jobs else None,
            dsn,
            configure=lambda options: options.set_concurrency(1, 4),
            shutdown_timeout=5,
        )
    )

    @app.post("/signup")
    async def signup(body: Signup, conn: Transaction) -> dict[str, Any]:
        await conn.execute("INSERT INTO users (email) VALUES (%s)", (body.email,))
        job_id = await send_welcome.builder().set_json({"email": body.email}).spawn(conn)
        if body.email.endswith(".invalid"):
            raise HTTPException(422, "undeliverable address")  # rolls back the user and the job
        return {"job_id": str(job_id)}

    return app
