"""The HTTP JSON API against the real test database, in process through httpx's ASGITransport."""

from __future__ import annotations

import asyncio
import base64
import importlib
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import httpx
import psycopg
from psycopg.conninfo import make_conninfo
from starlette.applications import Starlette
from starlette.routing import Mount

from sqlxmq_py import CurrentJob, JobBuilder, job, spawn_many
from sqlxmq_py.admin import job_status
from sqlxmq_py.web import create_app
from sqlxmq_py.web.waiting import wait_turn as wait_for_job

from ..helpers import result_awaited, wait_until
from .conftest import AUTH, ERROR_TEXT, TOKEN, Runner, failed_job, leased_job

NO_JOB = "01900000-0000-7000-8000-000000000000"


@job(channel_name="web", retain_for=3600)
async def double(current_job: CurrentJob) -> dict[str, int]:
    return {"doubled": current_job.json()["n"] * 2}


@job(channel_name="web", retries=0, retain_for=3600)
async def explode(current_job: CurrentJob) -> None:
    raise RuntimeError("kaboom from the job")


async def spawn(client: httpx.AsyncClient, **body: Any) -> str:
    response = await client.post("/api/jobs", json=body, headers=AUTH)
    assert response.status_code == 201, response.text
    job_id: str = response.json()["id"]
    assert response.headers["location"] == f"/api/jobs/{job_id}"
    return job_id


# --- spawning -------------------------------------------------------------------------------


async def test_spawn_with_every_option_and_read_it_back(
    client: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    parent = await spawn(client, name="parent", channel_name="other")
    job_id = await spawn(
        client,
        name="send_email",
        payload={"to": "ada@example.com", "n": [1, 2.5, None, True]},
        payload_base64=base64.b64encode(b"\x00\x01binary").decode(),
        channel_name="emails",
        channel_args="customer-42",
        delay=3600,
        priority=7,
        retries=2,
        retry_backoff=2.5,
        lease=45,
        job_key="welcome:ada",
        retain_for=600,
        after=[parent],
        headers={"traceparent": "00-abc-def-01"},
        dead_letter="email_failed",
    )
    status = (await client.get(f"/api/jobs/{job_id}")).json()
    assert status["id"] == job_id
    assert status["name"] == "send_email"
    assert status["state"] == "waiting"  # for its parent
    assert status["channel_name"] == "emails"
    assert status["channel_args"] == "customer-42"
    assert (status["priority"], status["max_attempts"], status["attempts"]) == (7, 3, 0)
    assert status["job_key"] == "welcome:ada"
    assert status["finished_at"] is None
    assert status["last_error"] is None
    run_at = datetime.fromisoformat(status["run_at"])
    assert timedelta(minutes=59) < run_at - datetime.now(UTC) < timedelta(minutes=61)

    details = (await client.get(f"/api/jobs/{job_id}/details")).json()
    assert details["status"] == status
    assert details["payload_json"] == '{"to":"ada@example.com","n":[1,2.5,null,true]}'
    assert details["payload_bytes_size"] == 8
    assert details["headers"] == {"traceparent": "00-abc-def-01"}
    assert details["parents"] == [parent]
    assert details["children"] == []
    assert (details["retry_backoff_s"], details["lease_s"], details["retain_for_s"]) == (
        2.5,
        45.0,
        600.0,
    )
    assert details["dead_letter"] == "email_failed"
    assert details["ordered"] is False
    assert details["chain"] is None
    parent_details = (await client.get(f"/api/jobs/{parent}/details")).json()
    assert parent_details["children"] == [job_id]


async def test_spawn_run_at_and_defaults(client: httpx.AsyncClient) -> None:
    at = datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    job_id = await spawn(client, name="report", run_at="2031-05-06T09:08:09.123456+02:00")
    status = (await client.get(f"/api/jobs/{job_id}")).json()
    assert status["state"] == "scheduled"
    assert datetime.fromisoformat(status["run_at"]) == at
    plain = (await client.get(f"/api/jobs/{await spawn(client, name='plain')}")).json()
    assert plain["state"] == "ready"
    assert (plain["channel_name"], plain["channel_args"], plain["priority"]) == ("", "", 0)
    assert plain["max_attempts"] == 5
    details = (await client.get(f"/api/jobs/{plain['id']}/details")).json()
    assert details["payload_json"] is None
    assert details["payload_bytes_size"] is None
    null_payload = await spawn(client, name="plain", payload=None)
    details = (await client.get(f"/api/jobs/{null_payload}/details")).json()
    assert details["payload_json"] == "null"


async def test_job_keys_dedupe_and_client_ids_conflict(client: httpx.AsyncClient) -> None:
    first = await spawn(client, name="digest", job_key="digest:bob", payload=1)
    again = await spawn(client, name="digest", job_key="digest:bob", payload=2)
    assert again == first
    kept = await spawn(
        client, name="digest", job_key="digest:bob", job_key_mode="unsafe_dedupe", payload=3
    )
    assert kept == first
    details = (await client.get(f"/api/jobs/{first}/details")).json()
    assert details["payload_json"] == "2"

    own_id = str(uuid.uuid4())
    assert await spawn(client, name="once", id=own_id) == own_id
    response = await client.post("/api/jobs", json={"name": "once", "id": own_id}, headers=AUTH)
    assert response.status_code == 409
    assert response.json() == {
        "error": "conflict",
        "detail": "a job with this id already exists",
        "field": "id",
    }


BAD_SPAWNS = [
    ({}, "name"),
    ({"name": 5}, "name"),
    ({"name": "a\x00b"}, "name"),
    ({"name": "x", "colour": "red"}, "colour"),
    ({"name": "x", "priority": "high"}, "priority"),
    ({"name": "x", "priority": 1.5}, "priority"),
    ({"name": "x", "retries": 1e300}, "retries"),
    ({"name": "x", "priority": 2**31}, "priority"),
    ({"name": "x", "retries": -1}, "retries"),
    ({"name": "x", "retries": True}, "retries"),
    ({"name": "x", "delay": -1}, "delay"),
    ({"name": "x", "delay": "soon"}, "delay"),
    ({"name": "x", "delay": 10**12}, "delay"),
    ({"name": "x", "delay": 1, "run_at": "2030-01-01T00:00:00Z"}, "run_at"),
    ({"name": "x", "run_at": "2030-01-01T00:00:00"}, "run_at"),
    ({"name": "x", "run_at": "tomorrow"}, "run_at"),
    ({"name": "x", "run_at": "2030-13-01T00:00:00Z"}, "run_at"),
    ({"name": "x", "run_at": "0001-01-01T00:00:00Z"}, "run_at"),
    ({"name": "x", "run_at": "8999-01-01T00:00:00Z"}, "run_at"),
    ({"name": "x", "lease": 0}, "lease"),
    ({"name": "x", "retry_backoff": -0.5}, "retry_backoff"),
    ({"name": "x", "payload_base64": "not base64!"}, "payload_base64"),
    ({"name": "x", "throttle": 60}, "throttle"),
    ({"name": "x", "job_key": "k", "job_key_mode": "merge"}, "job_key_mode"),
    ({"name": "x", "after": ["nope"]}, "after"),
    ({"name": "x", "after": "0190"}, "after"),
    ({"name": "x", "headers": {"a": 1}}, "headers"),
    ({"name": "x", "headers": ["a"]}, "headers"),
    ({"name": "x", "ordered": "yes"}, "ordered"),
    ({"name": "x", "id": "123"}, "id"),
    ({"name": "x", "channel_name": ["emails"]}, "channel_name"),
]


async def test_bad_spawn_input_names_the_field(
    client: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    for body, field in BAD_SPAWNS:
        response = await client.post("/api/jobs", json=body, headers=AUTH)
        assert response.status_code == 400, (body, response.text)
        error = response.json()
        assert error["error"] == "bad_request"
        assert error["field"] == field, body
        assert field in error["detail"], body
    assert db.execute("SELECT count(*) FROM mq_jobs").fetchone() == (0,)


async def test_bad_bodies(client: httpx.AsyncClient) -> None:
    async def post(content: bytes, content_type: str = "application/json") -> httpx.Response:
        headers = {**AUTH, "Content-Type": content_type}
        return await client.post("/api/jobs", content=content, headers=headers)

    for content in (b"[1]", b'"name"', b"{", b'{"name": NaN}', b"\xff\xfe", b"[" * 100_000):
        response = await post(content)
        assert response.status_code == 400, content[:20]
        assert response.json()["error"] == "bad_request"
    empty = await post(b"")
    assert empty.status_code == 400
    assert "JSON object" in empty.json()["detail"]
    # a lone surrogate is valid JSON but not valid text for PostgreSQL
    surrogate = await post(b'{"name": "x", "channel_name": "\\ud800"}')
    assert surrogate.status_code == 400
    assert surrogate.json()["field"] == "channel_name"
    payload_surrogate = await post(b'{"name": "x", "payload": ["\\udfff"]}')
    assert payload_surrogate.status_code == 400
    assert payload_surrogate.json()["field"] == "payload"
    form = await post(b"name=x", "application/x-www-form-urlencoded")
    assert form.status_code == 415
    assert form.json()["error"] == "unsupported_media_type"
    large = await post(b'{"name": "x", "payload": "' + b"a" * (16 * 1024 * 1024) + b'"}')
    assert large.status_code == 413
    assert large.json()["error"] == "payload_too_large"


async def test_state_changes_need_the_bearer_token(
    client: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    failed = str(failed_job(db))
    attempts = [
        ("/api/jobs", {"name": "x"}),
        (f"/api/jobs/{failed}/cancel", None),
        (f"/api/jobs/{failed}/retry", None),
        ("/api/cancel", {"ids": [failed]}),
        ("/api/retry", {"ids": [failed]}),
        ("/api/purge", {"failed_older_than_s": 0}),
        (f"/api/jobs/{failed}/result", {"timeout": 0}),
    ]
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        for path, body in attempts:
            response = await client.post(path, json=body, headers=headers)
            assert response.status_code == 401, path
            assert response.headers["www-authenticate"] == 'Bearer realm="sqlxmq"'
            assert response.json()["error"] == "unauthorized"
    assert db.execute("SELECT count(*), min(state::text) FROM mq_jobs").fetchone() == (1, "f")
    # reading needs no token
    assert (await client.get(f"/api/jobs/{failed}")).json()["state"] == "failed"
    for path in (
        "/api/jobs",
        "/api/counts",
        "/api/throughput",
        "/api/blocked-chains",
        "/api/workers",
    ):
        assert (await client.get(path)).status_code == 200, path


async def test_without_a_token_state_changes_are_refused(
    dsn: str, db: psycopg.Connection[Any]
) -> None:
    failed = str(failed_job(db))
    app = create_app(dsn)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as client,
    ):
        for path in ("/api/jobs", f"/api/jobs/{failed}/retry", "/api/purge"):
            response = await client.post(path, json={"name": "x"}, headers=AUTH)
            assert response.status_code == 403
            assert "started without a token" in response.json()["detail"]
        assert (await client.get(f"/api/jobs/{failed}")).status_code == 200
    assert db.execute("SELECT state::text FROM mq_jobs").fetchall() == [("f",)]


# --- status, result, cancel, retry ----------------------------------------------------------


async def test_unknown_and_malformed_ids(client: httpx.AsyncClient) -> None:
    for path in ("", "/details", "/result"):
        missing = await client.get(f"/api/jobs/{NO_JOB}{path}")
        assert missing.status_code == 404
        assert missing.json()["error"] == "not_found"
        malformed = await client.get(f"/api/jobs/not-a-uuid{path}")
        assert malformed.status_code == 400
        assert malformed.json()["field"] == "id"
    for odd in (NO_JOB.replace("-", ""), f"{{{NO_JOB}}}", f"urn:uuid:{NO_JOB}", "%FF"):
        response = await client.get(f"/api/jobs/{odd}")
        assert response.status_code == 400, odd
    newline = await client.get("/api/jobs", params={"limit": "5\n"})
    assert newline.status_code == 400
    for action in ("cancel", "retry"):
        missing = await client.post(f"/api/jobs/{NO_JOB}/{action}", headers=AUTH)
        assert missing.status_code == 404, action
    assert (await client.get("/api/nowhere")).json()["error"] == "not_found"
    wrong_method = await client.delete("/api/jobs")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"] == "method_not_allowed"
    assert "GET" in wrong_method.headers["allow"]
    assert "POST" in wrong_method.headers["allow"]


def _rows(db: psycopg.Connection[Any], job_id: str) -> tuple[Any, ...]:
    """Everything the queue holds about a job (to see that a read changed nothing)."""
    jobs = db.execute("SELECT to_jsonb(j)::text FROM mq_jobs AS j WHERE id = %s", (job_id,))
    payloads = db.execute("SELECT to_jsonb(p)::text FROM mq_payloads AS p WHERE id = %s", (job_id,))
    history = db.execute("SELECT to_jsonb(h)::text FROM mq_history AS h WHERE id = %s", (job_id,))
    return (jobs.fetchall(), payloads.fetchall(), history.fetchall())


async def test_reading_a_result_changes_nothing_and_waiting_needs_the_token(
    client: httpx.AsyncClient, db: psycopg.Connection[Any], dsn: str
) -> None:
    job_id = await spawn(client, name="double", channel_name="web", payload={"n": 1})
    before = _rows(db, job_id)
    assert '"notify_done": false' in before[1][0][0]
    assert '"retain_for": null' in before[1][0][0]
    for _ in range(3):
        read = await client.get(f"/api/jobs/{job_id}/result")
        assert read.status_code == 202
        assert read.json() == {"id": job_id, "state": "ready"}
    assert (await client.head(f"/api/jobs/{job_id}/result")).status_code == 202
    # the old way to wait is refused, and says how to wait now
    old_wait = await client.get(f"/api/jobs/{job_id}/result", params={"timeout": 1})
    assert old_wait.status_code == 400
    assert old_wait.json()["field"] == "timeout"
    assert "POST" in old_wait.json()["detail"]
    # waiting without the token (or with a wrong one) is refused before anything is written
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        refused = await client.post(
            f"/api/jobs/{job_id}/result", json={"timeout": 1}, headers=headers
        )
        assert refused.status_code == 401
        assert refused.json()["error"] == "unauthorized"
    read_only = create_app(dsn)
    async with (
        read_only.router.lifespan_context(read_only),
        httpx.AsyncClient(transport=httpx.ASGITransport(read_only), base_url="http://t") as anon,
    ):
        assert (await anon.get(f"/api/jobs/{job_id}/result")).status_code == 202
        forbidden = await anon.post(f"/api/jobs/{job_id}/result", headers=AUTH)
        assert forbidden.status_code == 403
    assert _rows(db, job_id) == before

    # with the token, waiting registers interest: kept an hour, its end notified
    waited = await client.post(f"/api/jobs/{job_id}/result", json={"timeout": 0}, headers=AUTH)
    assert waited.status_code == 202
    registered = db.execute(
        "SELECT notify_done, retain_for FROM mq_payloads WHERE id = %s", (job_id,)
    ).fetchone()
    assert registered == (True, timedelta(hours=1))
    for body, field in (
        ({"timeout": -1}, "timeout"),
        ({"timeout": 61}, "timeout"),
        ({"t": 1}, "t"),
    ):
        bad = await client.post(f"/api/jobs/{job_id}/result", json=body, headers=AUTH)
        assert bad.status_code == 400
        assert bad.json()["field"] == field


async def test_reading_the_result_of_a_kept_job(
    client: httpx.AsyncClient, db: psycopg.Connection[Any], runner: Runner
) -> None:
    job_id = await spawn(
        client, name=double.name, channel_name="web", payload={"n": 4}, retain_for=600
    )
    async with runner([double, explode]):
        await wait_until(lambda: db.execute("SELECT count(*) FROM mq_history").fetchone() == (1,))
    before = _rows(db, job_id)
    read = await client.get(f"/api/jobs/{job_id}/result")
    assert read.status_code == 200
    assert read.json() == {"id": job_id, "state": "completed", "result": {"doubled": 8}}
    assert _rows(db, job_id) == before
    missing = await client.get(f"/api/jobs/{NO_JOB}/result")
    assert missing.status_code == 404


async def test_result_waits_for_completion_without_polling(
    client: httpx.AsyncClient, db: psycopg.Connection[Any], runner: Runner
) -> None:
    job_id = await spawn(client, name=double.name, channel_name="web", payload={"n": 21})
    pending = await client.get(f"/api/jobs/{job_id}/result")
    assert pending.status_code == 202
    assert pending.json() == {"id": job_id, "state": "ready"}
    waiting = asyncio.create_task(
        client.post(f"/api/jobs/{job_id}/result", json={"timeout": 20}, headers=AUTH)
    )
    await wait_until(lambda: result_awaited(db, job_id))  # the request is waiting
    assert not waiting.done()
    async with runner([double, explode]):
        response = await asyncio.wait_for(waiting, 15)
    assert response.status_code == 200
    assert response.json() == {"id": job_id, "state": "completed", "result": {"doubled": 42}}
    again = await client.get(f"/api/jobs/{job_id}/result")  # kept: the waiter registered it
    assert again.json()["result"] == {"doubled": 42}
    status = (await client.get(f"/api/jobs/{job_id}")).json()
    assert status["state"] == "completed"
    assert status["result"] == {"doubled": 42}


async def test_result_of_failed_and_cancelled_jobs_is_409(
    client: httpx.AsyncClient, runner: Runner
) -> None:
    bad = await spawn(client, name=explode.name, channel_name="web", retries=0)
    async with runner([double, explode]):
        response = await client.post(f"/api/jobs/{bad}/result", json={"timeout": 15}, headers=AUTH)
    assert response.status_code == 409
    body = response.json()
    assert body["error"] == "job_failed"
    assert "kaboom from the job" in body["detail"]
    assert body["job"]["state"] == "failed"
    assert "RuntimeError: kaboom from the job" in body["job"]["last_error"]

    later = await spawn(client, name=double.name, channel_name="web", delay=3600)
    cancelled = await client.post(
        f"/api/jobs/{later}/cancel", json={"reason": "no need"}, headers=AUTH
    )
    assert cancelled.json() == {"id": later, "outcome": "cancelled"}
    response = await client.get(f"/api/jobs/{later}/result")
    assert response.status_code == 409
    assert response.json()["error"] == "job_cancelled"
    assert response.json()["job"]["last_error"] == "no need"
    waited = await client.post(f"/api/jobs/{later}/result", headers=AUTH)
    assert waited.status_code == 409
    assert waited.json()["error"] == "job_cancelled"
    # a failed job kept in the queue answers 409 to a plain read too
    failed = await client.get(f"/api/jobs/{bad}/result")
    assert failed.status_code == 409
    assert failed.json()["error"] == "job_failed"
    assert failed.json()["job"]["state"] == "failed"


async def test_cancel_waiting_running_and_finished_jobs(
    client: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    waiting = await spawn(client, name="later", delay=600)
    response = await client.post(f"/api/jobs/{waiting}/cancel", headers=AUTH)
    assert response.status_code == 200
    assert response.json() == {"id": waiting, "outcome": "cancelled"}
    status = (await client.get(f"/api/jobs/{waiting}")).json()
    assert status["state"] == "cancelled"
    assert status["last_error"] == "cancelled"
    again = await client.post(f"/api/jobs/{waiting}/cancel", headers=AUTH)
    assert again.status_code == 409
    assert again.json()["job"]["state"] == "cancelled"

    running = str(leased_job(db))
    response = await client.post(f"/api/jobs/{running}/cancel", headers=AUTH)
    assert response.json() == {"id": running, "outcome": "requested"}
    status = (await client.get(f"/api/jobs/{running}")).json()
    assert status["state"] == "running"
    assert status["cancel_requested"] is True

    bad = await client.post(f"/api/jobs/{running}/cancel", json={"why": "x"}, headers=AUTH)
    assert bad.status_code == 400
    assert bad.json()["field"] == "why"


async def test_retry_a_failed_job(client: httpx.AsyncClient, db: psycopg.Connection[Any]) -> None:
    failed = str(failed_job(db))
    response = await client.post(f"/api/jobs/{failed}/retry", headers=AUTH)
    assert response.status_code == 200
    assert response.json()["state"] == "ready"
    assert response.json()["attempts"] == 0
    assert db.execute("SELECT state::text FROM mq_jobs WHERE id = %s", (failed,)).fetchone() == (
        "r",
    )
    again = await client.post(f"/api/jobs/{failed}/retry", headers=AUTH)
    assert again.status_code == 409
    assert "only failed jobs" in again.json()["detail"]
    assert again.json()["job"]["state"] == "ready"


async def test_bulk_retry_and_cancel(
    client: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    failed = [str(failed_job(db, channel_name=f"c{i}")) for i in range(3)]
    ready = await spawn(client, name="x")
    response = await client.post("/api/retry", json={"ids": [*failed, ready, NO_JOB]}, headers=AUTH)
    assert response.status_code == 200
    assert sorted(response.json()["retried"]) == sorted(failed)
    response = await client.post(
        "/api/cancel", json={"ids": [*failed, NO_JOB], "reason": "bulk"}, headers=AUTH
    )
    assert response.json() == {"outcomes": dict.fromkeys(failed, "cancelled")}
    assert db.execute("SELECT count(*) FROM mq_jobs").fetchone() == (1,)
    for body, field in (({}, "ids"), ({"ids": "x"}, "ids"), ({"ids": [1]}, "ids")):
        response = await client.post("/api/cancel", json=body, headers=AUTH)
        assert response.status_code == 400
        assert response.json()["field"] == field
    too_many = {"ids": [str(uuid.uuid4()) for _ in range(1001)]}
    assert (await client.post("/api/retry", json=too_many, headers=AUTH)).status_code == 400


async def test_purge(client: httpx.AsyncClient, db: psycopg.Connection[Any]) -> None:
    failed_job(db)
    kept = await client.post("/api/purge", json={"failed_older_than_s": 3600}, headers=AUTH)
    assert kept.json() == {"failed": 0, "history": 0, "chains_kept": []}
    done = await client.post("/api/purge", json={"failed_older_than_s": 0}, headers=AUTH)
    assert done.json() == {"failed": 1, "history": 0, "chains_kept": []}
    nothing = {"failed": 0, "history": 0, "chains_kept": []}
    assert (await client.post("/api/purge", headers=AUTH)).json() == nothing
    bad = await client.post("/api/purge", json={"failed_older_than_s": -1}, headers=AUTH)
    assert bad.status_code == 400
    assert bad.json()["field"] == "failed_older_than_s"


# --- listing, counts, charts, chains --------------------------------------------------------


async def test_list_filters_and_pages(
    client: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    images = spawn_many(db, [JobBuilder("resize").set_channel_name("images") for _ in range(5)])
    emails = spawn_many(
        db, [JobBuilder("send").set_channel_name("emails").set_job_key(f"k{i}") for i in range(2)]
    )
    later = JobBuilder("send").set_channel_name("emails").set_delay(600).spawn(db)
    broken = failed_job(db, "resize", "broken")

    async def ids(**params: Any) -> list[str]:
        response = await client.get("/api/jobs", params=params)
        assert response.status_code == 200, response.text
        return [j["id"] for j in response.json()["jobs"]]

    everything = [str(i) for i in [*images, *emails, later, broken]][::-1]
    assert await ids() == everything
    assert await ids(channel_name="images") == [str(i) for i in images[::-1]]
    assert await ids(name="send") == [str(i) for i in [*emails, later][::-1]]
    assert await ids(job_key="k1") == [str(emails[1])]
    assert await ids(state="failed") == [str(broken)]
    assert await ids(state=["scheduled", "failed"]) == [str(broken), str(later)]
    assert await ids(state="retrying") == []
    assert await ids(channel_name="nothing") == []

    pages: list[str] = []
    before = None
    while True:
        params: dict[str, Any] = {"limit": 3} | ({"before": before} if before else {})
        page = (await client.get("/api/jobs", params=params)).json()
        pages += [j["id"] for j in page["jobs"]]
        assert len(page["jobs"]) <= 3
        before = page["next_before"]
        if before is None:
            break
    assert pages == everything

    for params, field in (
        ({"state": "sleeping"}, "state"),
        ({"limit": 0}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"before": "yesterday"}, "before"),
        ({"name": "a\x00"}, "name"),
    ):
        response = await client.get("/api/jobs", params=params)
        assert response.status_code == 400
        assert response.json()["field"] == field


async def test_retrying_filter_pages_past_scheduled_jobs(
    client: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    from sqlxmq_py.pull import fail, fetch

    retrying = JobBuilder("flaky").set_channel_name("flaky").set_retries(3).spawn(db)
    (leased,) = fetch(db, ["flaky"], limit=1)
    assert fail(db, leased, "transient", delay=3600) == "retrying"
    spawn_many(db, [JobBuilder("later").set_delay(3600) for _ in range(12)])  # newer, scheduled
    response = (await client.get("/api/jobs", params={"state": "retrying", "limit": 5})).json()
    assert [j["id"] for j in response["jobs"]] == [str(retrying)]
    assert response["next_before"] is None
    scheduled = (await client.get("/api/jobs", params={"state": "scheduled", "limit": 5})).json()
    assert len(scheduled["jobs"]) == 5
    assert scheduled["next_before"] is not None
    assert {j["state"] for j in scheduled["jobs"]} == {"scheduled"}


async def test_counts_throughput_and_blocked_chains(
    client: httpx.AsyncClient, db: psycopg.Connection[Any], runner: Runner
) -> None:
    spawn_many(db, [double.builder().set_json({"n": i}) for i in range(4)])
    explode.builder().spawn(db)
    async with runner([double, explode]) as handle:
        await wait_until(
            lambda: db.execute("SELECT count(*) FROM mq_jobs WHERE state <> 'f'").fetchone() == (0,)
        )
        await handle.wait_jobs_finish(timeout=5)
    # runners write their counts when they stop
    response = (await client.get("/api/throughput", params={"minutes": 5})).json()
    totals = {k: sum(b[k] for b in response["buckets"]) for k in ("completed", "retried", "failed")}
    assert totals == {"completed": 4, "retried": 0, "failed": 1}
    one_channel = await client.get("/api/throughput", params={"channel_name": "other"})
    assert one_channel.json()["buckets"] == []

    head = failed_job(db, "entry", "ledger", ordered=True)
    behind = spawn_many(
        db, [JobBuilder("entry").set_channel_name("ledger").set_ordered() for _ in range(2)]
    )
    chains = (await client.get("/api/blocked-chains")).json()["chains"]
    assert chains == [
        {
            "channel_name": "ledger",
            "channel_args": "",
            "head_id": str(head),
            "head_name": "entry",
            "error": ERROR_TEXT,
            "waiting": 2,
        }
    ]
    counts = (await client.get("/api/counts")).json()["counts"]
    by_key = {(c["channel_name"], c["state"]): c["count"] for c in counts}
    assert by_key == {("web", "failed"): 1, ("ledger", "failed"): 1, ("ledger", "waiting"): 2}

    chain = (await client.get(f"/api/jobs/{behind[0]}/details")).json()["chain"]
    assert chain == {
        "position": 2,
        "length": 3,
        "head_id": str(head),
        "previous_id": str(head),
        "next_id": str(behind[1]),
    }
    retried = await client.post(f"/api/jobs/{head}/retry", headers=AUTH)
    assert retried.json()["state"] == "ready"
    assert (await client.get("/api/blocked-chains")).json() == {"chains": []}


# --- the document, mounting, failures -------------------------------------------------------


async def test_openapi_served_with_the_mount_prefix(client: httpx.AsyncClient) -> None:
    document = (await client.get("/api/openapi.json")).json()
    assert document["servers"] == [{"url": "/api"}]
    assert "/jobs/{id}/result" in document["paths"]


async def test_mounted_under_a_prefix_with_the_host_running_its_lifespan(dsn: str) -> None:
    dashboard = create_app(dsn, token=TOKEN)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with dashboard.router.lifespan_context(dashboard):
            yield

    host = Starlette(routes=[Mount("/admin/queue", app=dashboard)], lifespan=lifespan)
    async with (
        host.router.lifespan_context(host),
        httpx.AsyncClient(transport=httpx.ASGITransport(host), base_url="http://h") as client,
    ):
        response = await client.post("/admin/queue/api/jobs", json={"name": "x"}, headers=AUTH)
        assert response.status_code == 201
        job_id = response.json()["id"]
        assert response.headers["location"] == f"/admin/queue/api/jobs/{job_id}"
        document = (await client.get("/admin/queue/api/openapi.json")).json()
        assert document["servers"] == [{"url": "/admin/queue/api"}]
        page = await client.get("/admin/queue/")
        assert page.status_code == 200
        assert 'href="/admin/queue/static/style.css"' in page.text
        assert 'href="/admin/queue/jobs"' in page.text
        job_page = await client.get(f"/admin/queue/jobs/{job_id}")
        assert job_id in job_page.text
        css = await client.get("/admin/queue/static/style.css")
        assert css.status_code == 200
        assert css.headers["content-type"].startswith("text/css")
        missing = await client.get("/admin/queue/api/nothing")
        assert missing.json()["error"] == "not_found"


async def test_mounted_without_lifespan_opens_its_pool_on_first_request(dsn: str) -> None:
    dashboard = create_app(dsn)
    host = Starlette(routes=[Mount("/q", app=dashboard)])
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(host), base_url="http://h") as c:
            assert (await c.get("/q/api/counts")).json() == {"counts": [], "exact": True}
    finally:
        await dashboard.state.sqlxmq.pools.close()


async def test_metrics_served_when_available(
    client: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    failed_job(db, channel_name="metered")
    response = await client.get("/metrics")
    try:
        importlib.import_module("sqlxmq_py.metrics")
    except ImportError:  # prometheus_client is not installed
        assert response.status_code == 404
        return
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert 'sqlxmq_queue_jobs{channel="metered",state="failed"} 1.0' in response.text


async def test_database_without_schema_answers_503(empty_dsn: str) -> None:
    app = create_app(empty_dsn)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as client,
    ):
        response = await client.get("/api/counts")
        assert response.status_code == 503
        assert "migrate" in response.json()["detail"]
        page = await client.get("/")
        assert page.status_code == 503
        assert "migrate" in page.text


async def test_unreachable_database_answers_503(dsn: str) -> None:
    app = create_app(make_conninfo(dsn, dbname="sqlxmq_no_such_database"), token=TOKEN)
    app.state.sqlxmq.pools.timeout = 1.0
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as client,
    ):
        response = await client.get(f"/api/jobs/{NO_JOB}")
        assert response.status_code == 503
        assert response.json()["error"] == "unavailable"


async def test_job_status_matches_the_library(client: httpx.AsyncClient, dsn: str) -> None:
    job_id = await spawn(client, name="same", priority=-3, job_key="abc")
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        status = await job_status(conn, uuid.UUID(job_id))
    assert status is not None
    body = (await client.get(f"/api/jobs/{job_id}")).json()
    assert body["created_at"] == status.created_at.isoformat()
    assert (body["priority"], body["job_key"], body["state"]) == (-3, "abc", status.state)


async def test_a_wait_cancelled_midway_leaves_the_app_healthy(
    client: httpx.AsyncClient, app: Starlette, db: psycopg.Connection[Any]
) -> None:
    job_id = await spawn(client, name="slow", delay=600)
    waits = [
        asyncio.create_task(
            client.post(f"/api/jobs/{job_id}/result", json={"timeout": 30}, headers=AUTH)
        )
        for _ in range(6)  # more than the waiting turns
    ]
    # midway: a wait has registered its interest, and every waiting turn is taken
    await wait_until(lambda: result_awaited(db, job_id) and app.state.sqlxmq.pools.waiters.locked())
    for wait in waits:
        wait.cancel()
    results = await asyncio.gather(*waits, return_exceptions=True)
    assert all(isinstance(r, asyncio.CancelledError) for r in results), results
    pool = app.state.sqlxmq.pools
    assert not pool.waiters.locked()
    for _ in range(12):  # more requests than the pool has connections
        assert (await client.get(f"/api/jobs/{job_id}")).json()["state"] == "scheduled"
    pending = await client.post(f"/api/jobs/{job_id}/result", json={"timeout": 0.1}, headers=AUTH)
    assert pending.status_code == 202
    # Under anyio's level cancellation (as in servers and test clients built on it) psycopg's
    # clean-up is interrupted and closes the connection; the wait must still end as cancelled,
    # not with an error about the closed connection.
    with anyio.move_on_after(0.3) as scope:
        await wait_for_job(app.state.sqlxmq, uuid.UUID(job_id), 30)
    assert scope.cancelled_caught
    assert (await client.get(f"/api/jobs/{job_id}")).status_code == 200
