"""Bulk actions over HTTP (``/api/bulk/...``: count, retry, cancel, delete, run-now; the token;
409 with the chains a delete would release; the OpenAPI document) and on the dashboard's job
list (count first, a confirm step, login and CSRF)."""

from __future__ import annotations

from typing import Any

import httpx
import psycopg

from sqlxmq_py import JobBuilder
from sqlxmq_py.web.openapi import openapi_document

from .conftest import AUTH, failed_job
from .test_pages import SAME_ORIGIN, csrf_of, login

BULK = [f"/api/bulk/{action}" for action in ("count", "retry", "cancel", "delete", "run-now")]


async def test_changes_need_the_token_and_a_criterion(
    client: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    failed_job(db)
    for path in BULK:
        response = await client.post(path, json={"all": True})
        assert response.status_code == 401, path
        empty = await client.post(path, json={}, headers=AUTH)
        assert empty.status_code == 400, path
        assert "at least one criterion" in empty.json()["detail"]
    unknown = await client.post("/api/bulk/count", json={"states": ["lost"]}, headers=AUTH)
    assert unknown.status_code == 400
    assert unknown.json()["field"] == "states"
    assert db.execute("SELECT count(*) FROM mq_jobs WHERE state = 'f'").fetchone() == (1,)


async def test_count_then_retry_cancel_and_run_now(
    client: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    failed = [failed_job(db, error=f"quota 100% used ({n})") for n in range(3)]
    failed_job(db, error="other")
    for _ in range(2):
        JobBuilder("later").set_channel_name("images").set_delay(3600).spawn(db)
    count = await client.post("/api/bulk/count", json={"error": "100% used"}, headers=AUTH)
    assert count.json() == {"count": 3, "chains": []}
    by_action = await client.post(
        "/api/bulk/count", json={"channel_name": "images", "action": "run_now"}, headers=AUTH
    )
    assert by_action.json()["count"] == 2
    retried = await client.post("/api/bulk/retry", json={"error": "100% used"}, headers=AUTH)
    assert retried.json() == {"changed": 3}
    rows = db.execute("SELECT state::text FROM mq_jobs WHERE id = ANY(%s)", (failed,)).fetchall()
    assert rows == [("r",)] * 3
    ran = await client.post("/api/bulk/run-now", json={"name": "later"}, headers=AUTH)
    assert ran.json() == {"changed": 2}
    cancelled = await client.post(
        "/api/bulk/cancel", json={"states": ["ready"], "reason": "enough"}, headers=AUTH
    )
    assert cancelled.json() == {"changed": 5}
    history = db.execute("SELECT count(*) FROM mq_history WHERE last_error = 'enough'")
    assert history.fetchone() == (5,)


async def test_delete_answers_409_with_the_chains_unless_released(
    client: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    head = failed_job(db, channel_name="ledger", ordered=True, error="broken")
    behind = JobBuilder("post").set_channel_name("ledger").set_ordered(True).spawn(db)
    count = await client.post(
        "/api/bulk/count", json={"error": "broken", "action": "delete"}, headers=AUTH
    )
    (chain,) = count.json()["chains"]
    assert chain["head_id"] == str(head)
    assert chain["waiting"] == 1
    refused = await client.post("/api/bulk/delete", json={"error": "broken"}, headers=AUTH)
    assert refused.status_code == 409
    body = refused.json()
    assert body["error"] == "chains_would_be_released"
    assert body["field"] == "release_chains"
    assert body["chains"] == [chain]
    assert db.execute("SELECT count(*) FROM mq_jobs").fetchone() == (2,)
    done = await client.post(
        "/api/bulk/delete", json={"error": "broken", "release_chains": True}, headers=AUTH
    )
    assert done.json() == {"changed": 1}
    row = db.execute("SELECT state::text FROM mq_jobs WHERE id = %s", (behind,)).fetchone()
    assert row == ("r",)


def test_the_document_lists_the_bulk_operations() -> None:
    document = openapi_document()
    for path in ["/bulk/count", "/bulk/retry", "/bulk/cancel", "/bulk/delete", "/bulk/run-now"]:
        entry = document["paths"][path]["post"]
        assert entry["tags"] == ["bulk"]
    delete = document["paths"]["/bulk/delete"]["post"]
    assert "409" in delete["responses"]
    error = document["components"]["schemas"]["Error"]
    assert "chains" in error["properties"]


async def test_dashboard_counts_first_then_acts_with_login_and_csrf(
    client: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    for n in range(3):
        failed_job(db, error=f"timeout {n}")
    failed_job(db, channel_name="other", error="timeout")
    anonymous = await client.get("/jobs?state=failed&channel_name=images")
    assert 'id="bulk-matching"' not in anonymous.text
    csrf = await login(client)
    page = await client.get("/jobs?state=failed&channel_name=images")
    assert 'id="bulk-matching"' in page.text
    form = {"state": "failed", "channel_name": "images", "action": "retry", "next": "/jobs"}
    no_csrf = await client.post("/actions/bulk", data=form, headers=SAME_ORIGIN)
    assert no_csrf.status_code == 403
    cross = await client.post(
        "/actions/bulk", data={**form, "csrf": csrf}, headers={"Origin": "http://evil.example"}
    )
    assert cross.status_code == 403
    confirm = await client.post("/actions/bulk", data={**form, "csrf": csrf}, headers=SAME_ORIGIN)
    assert confirm.status_code == 200
    assert "Retry all 3 matching jobs?" in confirm.text
    assert db.execute("SELECT count(*) FROM mq_jobs WHERE state = 'f'").fetchone() == (4,)
    done = await client.post(
        "/actions/bulk",
        data={**form, "csrf": csrf_of(confirm.text), "confirm_count": "3"},
        headers=SAME_ORIGIN,
    )
    assert done.status_code == 303
    assert "Retried%203%20jobs." in done.headers["set-cookie"]
    assert db.execute("SELECT count(*) FROM mq_jobs WHERE state = 'f'").fetchone() == (1,)
    empty = await client.post(
        "/actions/bulk", data={"action": "retry", "csrf": csrf}, headers=SAME_ORIGIN
    )
    assert empty.status_code == 400


async def test_dashboard_delete_asks_to_release_chains(
    client: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    head = failed_job(db, channel_name="ledger", ordered=True, error="broken")
    JobBuilder("post").set_channel_name("ledger").set_ordered(True).spawn(db)
    csrf = await login(client)
    form = {"channel_name": "ledger", "action": "delete", "csrf": csrf}
    confirm = await client.post("/actions/bulk", data=form, headers=SAME_ORIGIN)
    assert 'id="bulk-chains"' in confirm.text
    assert str(head) in confirm.text
    assert 'name="release_chains"' in confirm.text
    unreleased = await client.post(
        "/actions/bulk", data={**form, "confirm_count": "1"}, headers=SAME_ORIGIN
    )
    assert unreleased.status_code == 409
    assert db.execute("SELECT count(*) FROM mq_jobs").fetchone() == (2,)
    released = await client.post(
        "/actions/bulk",
        data={**form, "confirm_count": "1", "release_chains": "1"},
        headers=SAME_ORIGIN,
    )
    assert released.status_code == 303
    assert db.execute("SELECT state::text FROM mq_jobs").fetchall() == [("r",)]
