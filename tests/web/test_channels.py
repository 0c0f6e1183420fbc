"""Channels in the HTTP API and the dashboard: listing them, pausing, resuming and limiting
(with the token; the dashboard's forms also with their CSRF token), names escaped."""

from __future__ import annotations

from typing import Any

import httpx
import psycopg

from sqlxmq_py import CurrentJob, job, spawn_many
from sqlxmq_py.admin import list_channels, pause_channel
from sqlxmq_py.web import create_app

from .conftest import AUTH, TOKEN


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
    hostile = '<script>alert("x")</script>'
    pause_channel(db, hostile)
    listed = (await client.get("/api/channels")).json()["channels"]
    assert listed == [
        {"channel_name": hostile, "paused": True, "max_running": None, "ready": 0, "running": 0}
    ]
