"""An application process that runs jobs through the library's runner API (no CLI):
``python -m tests.adversarial.inprocess DSN KIND HOW``.

It starts a runner, spawns a job of ``tests.adversarial.app`` that tries to end the process
(KIND ``async`` or ``thread``, HOW ``sys.exit``, ``SystemExit`` or ``KeyboardInterrupt``), waits
until that job has failed, then spawns a normal job and waits until it has completed, stops the
runner and prints ``finished`` with the two job ids as its last line. Run apart from pytest, so
that what escapes the runner today ends this process, not the test session.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import uuid
from typing import Any

import psycopg
import structlog

from sqlxmq_py import JobRegistry
from sqlxmq_py.admin import job_status

from ..helpers import wait_until
from .app import exits, exits_thread, quick


def state(conn: psycopg.Connection[Any], job_id: uuid.UUID) -> str:
    found = job_status(conn, job_id)
    return "gone" if found is None else found.state


async def main(dsn: str, kind: str, how: str) -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    registry = JobRegistry([exits, exits_thread, quick])
    handle = await (
        registry.runner(dsn)
        .set_concurrency(2, 4)
        .set_lease(2)
        .set_poll_interval(0.5)
        .set_maintenance_interval(0.1)
        .run()
    )
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            bad = (exits if kind == "async" else exits_thread).builder().set_json({"how": how})
            bad_id = bad.spawn(conn)
            await wait_until(lambda: state(conn, bad_id) == "failed", timeout=15)
            quick_id = quick.builder().set_retain_for(3600).spawn(conn)
            await wait_until(lambda: state(conn, quick_id) == "completed", timeout=15)
    finally:
        await handle.stop(timeout=5)
    print("finished", json.dumps({"bad": str(bad_id), "quick": str(quick_id)}), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("dsn")
    parser.add_argument("kind", choices=["async", "thread"])
    parser.add_argument("how", choices=["sys.exit", "SystemExit", "KeyboardInterrupt"])
    args = parser.parse_args()
    asyncio.run(main(args.dsn, args.kind, args.how))
