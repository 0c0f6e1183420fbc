"""Schedules in the HTTP API and the dashboard: listing them, enabling, disabling, triggering
and deleting (with the token; the dashboard's forms also with their CSRF token), names
escaped."""

from __future__ import annotations

import json
from typing import Any

import httpx
import psycopg

from sqlxmq_py.admin import list_schedules
from sqlxmq_py.web import create_app
from sqlxmq_py.web.routes import OPERATIONS

from .conftest import AUTH, TOKEN
from .test_pages import SAME_ORIGIN, login

HOSTILE = '<script>alert("x")</script>&amp;'
ESCAPED = "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&amp;amp;"


def _schedule(db: psycopg.Connection[Any], name: str = "nightly") -> None:
    db.execute(
        "INSERT INTO mq_schedules (name, cron, timezone, job_name, channel_name, payload_json, "
        "backfill, last_tick) VALUES (%s, '0 3 * * *', 'Europe/Paris', 'report', 'reports', "
        "'{\"kind\": \"daily\"}', interval '2 hours', now())",
        (name,),
    )


async def test_list_enable_disable_trigger_and_delete_through_the_api(
    client: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    _schedule(db)
    listed = await client.get("/api/schedules")  # a read: no token
    assert listed.status_code == 200
    (one,) = listed.json()["schedules"]
    (schedule,) = list_schedules(db)
    assert schedule.next_tick is not None
    assert one == {
        "name": "nightly",
        "job_name": "report",
        "channel_name": "reports",
        "cron": "0 3 * * *",
        "timezone": "Europe/Paris",
        "enabled": True,
        "next_tick": schedule.next_tick.isoformat(),
        "last_spawned_tick": None,
        "last_tick": schedule.last_tick.isoformat(),
        "backfill_s": 7200.0,
    }
    body = {"name": "nightly"}
    disabled = await client.post("/api/schedules/disable", json=body, headers=AUTH)
    assert disabled.status_code == 200
    assert (disabled.json()["enabled"], disabled.json()["next_tick"]) == (False, None)
    enabled = await client.post("/api/schedules/enable", json=body, headers=AUTH)
    assert enabled.json()["enabled"] is True
    assert enabled.json()["next_tick"] is not None

    triggered = await client.post("/api/schedules/trigger", json=body, headers=AUTH)
    assert triggered.status_code == 200
    job_id = triggered.json()["job_id"]
    assert triggered.json() == {"name": "nightly", "job_id": job_id}
    row = db.execute(
        "SELECT p.name, j.channel_name, p.payload_json::text FROM mq_jobs AS j "
        "JOIN mq_payloads AS p ON p.id = j.id WHERE j.id = %s",
        (job_id,),
    ).fetchone()
    assert row is not None
    assert row[:2] == ("report", "reports")
    assert json.loads(row[2]) == {"kind": "daily"}
    assert (await client.get(f"/api/jobs/{job_id}")).status_code == 200

    deleted = await client.post("/api/schedules/delete", json=body, headers=AUTH)
    assert deleted.json() == {"name": "nightly", "deleted": True}
    assert list_schedules(db) == []


async def test_unknown_schedules_are_404_and_bad_names_400(client: httpx.AsyncClient) -> None:
    for change in ("enable", "disable", "trigger", "delete"):
        path = f"/api/schedules/{change}"
        missing = await client.post(path, json={"name": "missing"}, headers=AUTH)
        assert missing.status_code == 404, path
        assert missing.json()["error"] == "not_found"
        assert missing.json()["field"] == "name"
        for body in ({}, {"name": "a\x00b"}, {"name": 3}, {"name": "x", "more": 1}):
            refused = await client.post(path, json=body, headers=AUTH)
            assert refused.status_code == 400, (path, body)


async def test_schedule_changes_need_the_token(
    client: httpx.AsyncClient, dsn: str, db: psycopg.Connection[Any]
) -> None:
    _schedule(db)
    paths = [f"/api/schedules/{c}" for c in ("disable", "trigger", "delete")]
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        for path in paths:
            response = await client.post(path, json={"name": "nightly"}, headers=headers)
            assert response.status_code == 401, path
    app = create_app(dsn)  # no token: changes are forbidden
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as tokenless,
    ):
        for path in paths:
            response = await tokenless.post(path, json={"name": "nightly"}, headers=AUTH)
            assert response.status_code == 403, path
        assert (await tokenless.get("/api/schedules")).status_code == 200
    assert [s.enabled for s in list_schedules(db)] == [True]
    assert db.execute("SELECT count(*) FROM mq_jobs").fetchone() == (0,)
    changes = {o.operation_id: o.changes for o in OPERATIONS if o.tag == "schedules"}
    assert changes == {
        "listSchedules": False,
        "enableSchedule": True,
        "disableSchedule": True,
        "triggerSchedule": True,
        "deleteSchedule": True,
    }


async def test_the_openapi_document_has_the_schedule_operations(
    client: httpx.AsyncClient,
) -> None:
    document = (await client.get("/api/openapi.json")).json()
    assert document["paths"]["/schedules"]["get"]["operationId"] == "listSchedules"
    for change in ("enable", "disable", "trigger", "delete"):
        entry = document["paths"][f"/schedules/{change}"]["post"]
        assert entry["security"], change
        assert "404" in entry["responses"]
        assert entry["requestBody"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ScheduleRequest"
        }


# --- the dashboard ---------------------------------------------------------------------------


async def test_the_dashboard_operates_schedules_with_login_and_csrf(
    client: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    _schedule(db)
    page = (await client.get("/schedules")).text
    assert 'href="/schedules" aria-current="page">Schedules</a>' in page
    assert 'data-schedule="nightly"' in page
    assert "0 3 * * *" in page
    assert "Europe/Paris" in page
    assert "/actions/schedule-" not in page  # no forms before logging in
    form = {"schedule": "nightly", "next": "/schedules"}
    anonymous = await client.post("/actions/schedule-disable", data=form, headers=SAME_ORIGIN)
    assert anonymous.status_code == 403
    csrf = await login(client)
    page = (await client.get("/schedules")).text
    for change in ("disable", "trigger", "delete"):
        assert f'action="/actions/schedule-{change}"' in page
    for data, headers in [
        (form, SAME_ORIGIN),  # no CSRF token
        ({**form, "csrf": "0" * 64}, SAME_ORIGIN),
        ({**form, "csrf": csrf}, {"Origin": "http://evil.example"}),
    ]:
        for change in ("enable", "disable", "trigger", "delete"):
            path = f"/actions/schedule-{change}"
            refused = await client.post(path, data=data, headers=headers)
            assert refused.status_code == 403, (change, headers)
    assert [s.enabled for s in list_schedules(db)] == [True]
    assert db.execute("SELECT count(*) FROM mq_jobs").fetchone() == (0,)

    def post(change: str, **extra: str) -> Any:
        path = f"/actions/schedule-{change}"
        return client.post(path, data={**form, "csrf": csrf, **extra}, headers=SAME_ORIGIN)

    done = await post("disable")
    assert (done.status_code, done.headers["location"]) == (303, "/schedules")
    assert [s.enabled for s in list_schedules(db)] == [False]
    page = (await client.get("/schedules")).text
    assert "Disabled &#39;nightly&#39;" in page
    assert 'action="/actions/schedule-enable"' in page
    assert (await post("enable")).status_code == 303
    assert [s.enabled for s in list_schedules(db)] == [True]
    assert (await post("trigger")).status_code == 303
    assert db.execute("SELECT count(*) FROM mq_jobs").fetchone() == (1,)
    assert (await post("trigger", schedule="missing")).status_code == 404
    assert (await post("delete")).status_code == 303
    assert list_schedules(db) == []


async def test_hostile_schedule_names_are_escaped(
    client: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    _schedule(db, HOSTILE)
    for logged_in in (False, True):
        if logged_in:
            await login(client)
        page = (await client.get("/schedules")).text
        assert "<script>alert" not in page
        assert ESCAPED in page
    assert f'name="schedule" value="{ESCAPED}"' in page
    api = (await client.get("/api/schedules")).json()
    assert api["schedules"][0]["name"] == HOSTILE


async def test_a_read_only_dashboard_shows_schedules_and_refuses_changes(
    dsn: str, db: psycopg.Connection[Any]
) -> None:
    _schedule(db)
    app = create_app(dsn)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://testserver") as c,
    ):
        page = (await c.get("/schedules")).text
        assert "Read-only" in page
        assert "nightly" in page
        response = await c.post(
            "/actions/schedule-disable", data={"schedule": "nightly"}, headers=SAME_ORIGIN
        )
        assert response.status_code == 403
    assert [s.enabled for s in list_schedules(db)] == [True]
