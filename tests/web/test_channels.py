"""Channels in the HTTP API and the dashboard: listing them, pausing, resuming and limiting
(with the token; the dashboard's forms also with their CSRF token), names escaped."""

from __future__ import annotations

from typing import Any

import httpx
import psycopg

from sqlxmq_py import CurrentJob, job, spawn_many
from sqlxmq_py.admin import list_channels, pause_channel, resume_channel, set_channel_limit
from sqlxmq_py.web import create_app

from .conftest import AUTH, TOKEN
from .test_pages import SAME_ORIGIN, login

HOSTILE = '<script>alert("x")</script>&amp;'


@job(channel_name="mail")
async def send_mail(current_job: CurrentJob) -> None: ...


async def test_pause_resume_and_limit_through_the_api(
    client: httpx.AsyncClient, conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    spawn_many(conn, [send_mail.builder() for _ in range(2)])
    conn.commit()
    paused = await client.post("/api/channels/pause", json={"channel_name": "mail"}, headers=AUTH)
    assert paused.status_code == 200
    assert paused.json() == {
        "channel_name": "mail",
        "paused": True,
        "max_running": None,
        "ready": 2,
        "running": 0,
    }
    limited = await client.post(
        "/api/channels/limit", json={"channel_name": "mail", "max_running": 3}, headers=AUTH
    )
    assert limited.json()["max_running"] == 3
    assert limited.json()["paused"] is True
    listed = await client.get("/api/channels")
    assert listed.status_code == 200
    assert [c["channel_name"] for c in listed.json()["channels"]] == ["mail"]
    resumed = await client.post("/api/channels/resume", json={"channel_name": "mail"}, headers=AUTH)
    assert (resumed.json()["paused"], resumed.json()["max_running"]) == (False, 3)
    removed = await client.post(
        "/api/channels/limit", json={"channel_name": "mail", "max_running": None}, headers=AUTH
    )
    assert removed.json()["max_running"] is None
    # a channel with nothing left to say answers as one
    quiet = await client.post("/api/channels/resume", json={"channel_name": "x"}, headers=AUTH)
    assert quiet.json() == {
        "channel_name": "x",
        "paused": False,
        "max_running": None,
        "ready": 0,
        "running": 0,
    }
    assert db.execute("SELECT count(*) FROM mq_channel_limits").fetchone() == (0,)


async def test_bad_channel_input_is_a_400_naming_the_field(client: httpx.AsyncClient) -> None:
    for path, body, field in [
        ("/api/channels/limit", {"channel_name": "mail", "max_running": -1}, "max_running"),
        ("/api/channels/limit", {"channel_name": "mail"}, "max_running"),
        ("/api/channels/pause", {}, "channel_name"),
        ("/api/channels/pause", {"channel_name": "x" * 5000}, "channel_name"),
        ("/api/channels/resume", {"channel_name": "a\x00b"}, "channel_name"),
    ]:
        response = await client.post(path, json=body, headers=AUTH)
        assert response.status_code == 400, (path, body, response.text)
        assert response.json()["field"] == field, (path, body)


async def test_channel_changes_need_the_token(
    client: httpx.AsyncClient, dsn: str, db: psycopg.Connection[Any]
) -> None:
    attempts = [
        ("/api/channels/pause", {"channel_name": "mail"}),
        ("/api/channels/resume", {"channel_name": "mail"}),
        ("/api/channels/limit", {"channel_name": "mail", "max_running": 1}),
    ]
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        for path, body in attempts:
            response = await client.post(path, json=body, headers=headers)
            assert response.status_code == 401, path
    app = create_app(dsn)  # no token: changes are forbidden
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as tokenless,
    ):
        for path, body in attempts:
            response = await tokenless.post(path, json=body, headers=AUTH)
            assert response.status_code == 403, path
        assert (await tokenless.get("/api/channels")).status_code == 200
    assert list_channels(db) == []


async def test_paused_channels_show_in_the_api_listing_with_hostile_names(
    client: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    pause_channel(db, HOSTILE)
    listed = (await client.get("/api/channels")).json()["channels"]
    assert listed == [
        {"channel_name": HOSTILE, "paused": True, "max_running": None, "ready": 0, "running": 0}
    ]


# --- the dashboard ---------------------------------------------------------------------------


async def test_the_dashboard_pauses_limits_and_resumes_with_login_and_csrf(
    client: httpx.AsyncClient, conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    send_mail.builder().spawn(conn)
    conn.commit()
    page = (await client.get("/channels")).text
    assert 'href="/channels" aria-current="page">Channels</a>' in page
    assert 'data-channel="mail"' in page
    assert "/actions/pause" not in page  # no forms before logging in
    form = {"channel": "mail", "next": "/channels"}
    anonymous = await client.post("/actions/pause", data=form, headers=SAME_ORIGIN)
    assert anonymous.status_code == 403
    csrf = await login(client)
    for data, headers in [
        (form, SAME_ORIGIN),  # no CSRF token
        ({**form, "csrf": "0" * 64}, SAME_ORIGIN),
        ({**form, "csrf": csrf}, {"Origin": "http://evil.example"}),
    ]:
        for action in ("pause", "resume", "limit"):
            refused = await client.post(f"/actions/{action}", data=data, headers=headers)
            assert refused.status_code == 403, (action, headers)
    assert list_channels(db)[0].paused is False

    done = await client.post("/actions/pause", data={**form, "csrf": csrf}, headers=SAME_ORIGIN)
    assert (done.status_code, done.headers["location"]) == (303, "/channels")
    assert list_channels(db)[0].paused is True
    page = (await client.get("/channels")).text
    assert "Paused &#39;mail&#39;" in page
    assert 'action="/actions/resume"' in page
    limited = await client.post(
        "/actions/limit", data={**form, "csrf": csrf, "limit": "4"}, headers=SAME_ORIGIN
    )
    assert limited.status_code == 303
    assert list_channels(db)[0].max_running == 4
    bad = await client.post(
        "/actions/limit", data={**form, "csrf": csrf, "limit": "-2"}, headers=SAME_ORIGIN
    )
    assert bad.status_code == 400
    assert list_channels(db)[0].max_running == 4
    await client.post("/actions/resume", data={**form, "csrf": csrf}, headers=SAME_ORIGIN)
    await client.post(
        "/actions/limit", data={**form, "csrf": csrf, "limit": ""}, headers=SAME_ORIGIN
    )
    (mail,) = list_channels(db)
    assert (mail.paused, mail.max_running) == (False, None)


async def test_paused_channels_show_escaped_on_the_overview_and_channels_page(
    client: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    pause_channel(db, HOSTILE)
    set_channel_limit(db, "quiet", 2)
    await login(client)
    for path in ("/", "/channels"):
        page = (await client.get(path)).text
        assert "<script>alert" not in page, path
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&amp;amp;" in page, path
    overview = (await client.get("/")).text
    assert 'id="paused-channels"' in overview
    channels = (await client.get("/channels")).text
    assert (
        'name="channel" value="&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&amp;amp;"'
        in channels
    )
    resume_channel(db, HOSTILE)
    assert 'id="paused-channels"' not in (await client.get("/")).text


async def test_a_read_only_dashboard_shows_channels_and_refuses_changes(
    dsn: str, db: psycopg.Connection[Any]
) -> None:
    pause_channel(db, "mail")
    app = create_app(dsn)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://testserver") as c,
    ):
        page = (await c.get("/channels")).text
        assert "Read-only" in page
        assert "paused" in page
        for action in ("pause", "resume", "limit"):
            response = await c.post(
                f"/actions/{action}", data={"channel": "mail"}, headers=SAME_ORIGIN
            )
            assert response.status_code == 403
    assert list_channels(db)[0].paused is True
