"""The workflow operations of the HTTP API: the list with counts, one workflow's steps (every
field, escaped as JSON), cancelling, retrying a failed step; the refusals (no token, unknown
workflow or step, a step that did not fail, a cancelled workflow) each with its typed error."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

import httpx
import psycopg

from sqlxmq_py import BlockingCurrentJob, job
from sqlxmq_py.pull import complete, fail, fetch
from sqlxmq_py.workflow import SpawnedWorkflow, Workflow

from .conftest import AUTH

EVIL = "<script>alert(1)</script>"
SLASHED = "load/a b?c#d%e"
NO_ID = "0192f5d2-7c1e-7a41-9b6e-3c0d1f2a4b5c"


@job(retries=0)
def wf_api_step(current_job: BlockingCurrentJob) -> None:
    """A step settled by the test with the pull API."""


def failed_workflow(conn: psycopg.Connection[Any]) -> SpawnedWorkflow:
    """extract (completed, result kept) -> EVIL (failed) -> SLASHED (cancelled by its parent)."""
    wf = Workflow("nightly " + EVIL)
    wf.add("extract", wf_api_step.builder().set_channel_name("wfa-a"), group="g1")
    wf.add(EVIL, wf_api_step.builder().set_channel_name("wfa-b"), after=["extract"])
    wf.add(SLASHED, wf_api_step.builder().set_channel_name("wfa-c"), after=[EVIL])
    spawned = wf.spawn(conn)
    conn.commit()
    (a,) = fetch(conn, ["wfa-a"])
    complete(conn, a, result={"rows": 3})
    conn.commit()
    (b,) = fetch(conn, ["wfa-b"])
    fail(conn, b, EVIL, delay=0)
    conn.commit()
    return spawned


def step_path(workflow_id: uuid.UUID, step: str) -> str:
    return f"/api/workflows/{workflow_id}/steps/{quote(step, safe='')}/retry"


async def test_list_and_read_a_workflow_with_every_step_field(
    client: httpx.AsyncClient, conn: psycopg.Connection[Any]
) -> None:
    spawned = failed_workflow(conn)
    listed = (await client.get("/api/workflows")).json()["workflows"]
    assert [w["id"] for w in listed] == [str(spawned.id)]
    assert listed[0]["name"] == "nightly " + EVIL
    assert listed[0]["state"] == "failed"
    assert listed[0]["counts"] == {
        "total": 3,
        "waiting": 0,
        "pending": 0,
        "completed": 1,
        "failed": 1,
        "cancelled": 1,
        "skipped": 0,
    }
    assert (await client.get("/api/workflows", params={"name": "other"})).json() == {
        "workflows": []
    }
    response = await client.get(f"/api/workflows/{spawned.id}")
    assert response.status_code == 200
    # JSON escapes nothing of HTML, but the body is JSON: the raw name is data, not markup
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["state"] == "failed"
    steps = {s["name"]: s for s in body["steps"]}
    assert list(steps) == ["extract", EVIL, SLASHED]
    extract = steps["extract"]
    assert extract["state"] == "completed"
    assert extract["result"] == {"rows": 3}
    assert extract["group"] == "g1"
    assert extract["job_id"] == str(spawned.step_ids["extract"])
    assert extract["parents"] == []
    failed = steps[EVIL]
    assert (failed["state"], failed["parents"], failed["attempts"]) == ("failed", ["extract"], 1)
    assert EVIL in failed["error"]
    assert failed["on_parent_failure"] == "cancel"
    assert (steps[SLASHED]["state"], steps[SLASHED]["held_by"]) == ("cancelled", EVIL)


async def test_retry_a_failed_step_then_the_refusals(
    client: httpx.AsyncClient, conn: psycopg.Connection[Any]
) -> None:
    spawned = failed_workflow(conn)
    # no token: refused, nothing retried
    refused = await client.post(step_path(spawned.id, EVIL))
    assert refused.status_code == 401
    # a step that did not fail: 409, naming the step
    done = await client.post(step_path(spawned.id, "extract"), headers=AUTH)
    assert done.status_code == 409
    assert (done.json()["error"], done.json()["field"]) == ("conflict", "step")
    # unknown step (with '/', '?', '#', '%' in its name: percent-encoded in the path) and
    # unknown workflow: 404 naming which
    unknown = await client.post(step_path(spawned.id, "nope/" + SLASHED), headers=AUTH)
    assert (unknown.status_code, unknown.json()["field"]) == (404, "step")
    assert (await client.post(step_path(uuid.UUID(NO_ID), EVIL), headers=AUTH)).json()[
        "field"
    ] == "id"
    # a step name holding '/' is found through its percent-encoding (it was cancelled: 409)
    cancelled = await client.post(step_path(spawned.id, SLASHED), headers=AUTH)
    assert cancelled.status_code == 409, cancelled.text
    retried = await client.post(step_path(spawned.id, EVIL), headers=AUTH)
    assert retried.status_code == 200, retried.text
    assert retried.json() == {
        "workflow_id": str(spawned.id),
        "step": EVIL,
        "job_id": str(spawned.step_ids[EVIL]),
    }
    steps = {
        s["name"]: s for s in (await client.get(f"/api/workflows/{spawned.id}")).json()["steps"]
    }
    assert steps[EVIL]["display"] == "ready"
    assert steps[SLASHED]["state"] == "waiting"


async def test_cancel_a_workflow_then_retry_is_refused(
    client: httpx.AsyncClient, conn: psycopg.Connection[Any]
) -> None:
    spawned = failed_workflow(conn)
    missing = await client.post(f"/api/workflows/{NO_ID}/cancel", headers=AUTH)
    assert (missing.status_code, missing.json()["error"]) == (404, "not_found")
    assert (await client.post(f"/api/workflows/{spawned.id}/cancel")).status_code == 401
    cancelled = await client.post(
        f"/api/workflows/{spawned.id}/cancel", json={"reason": "stop " + EVIL}, headers=AUTH
    )
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["id"] == str(spawned.id)
    again = await client.post(f"/api/workflows/{spawned.id}/cancel", headers=AUTH)
    assert again.json()["cancelled"] == 0
    assert (await client.get(f"/api/workflows/{spawned.id}")).json()["state"] == "cancelled"
    closed = await client.post(step_path(spawned.id, EVIL), headers=AUTH)
    assert (closed.status_code, closed.json()["error"]) == (409, "conflict")


async def test_unknown_and_malformed_workflow_ids(client: httpx.AsyncClient) -> None:
    missing = await client.get(f"/api/workflows/{NO_ID}")
    assert missing.status_code == 404
    assert missing.json() == {
        "error": "not_found",
        "detail": f"workflow {NO_ID} does not exist (it never existed, or it expired)",
        "field": "id",
    }
    bad = await client.get("/api/workflows/nope")
    assert (bad.status_code, bad.json()["field"]) == (400, "id")
    bad_limit = await client.get("/api/workflows", params={"limit": "0"})
    assert (bad_limit.status_code, bad_limit.json()["field"]) == (400, "limit")
