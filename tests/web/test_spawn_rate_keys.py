"""Spawning over HTTP with rate keys: the keys are stored (without repeats) and read
back; each bad key is refused with a 400 whose field is rate_keys and whose detail names the
key, and nothing is spawned."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import psycopg

from sqlxmq_py.admin import job_status

from .conftest import AUTH

BOLD = "customer:<b>acme</b>"


async def test_spawn_with_rate_keys(client: httpx.AsyncClient, db: psycopg.Connection[Any]) -> None:
    body = {"name": "limited", "rate_keys": ["openai", BOLD, "openai", "é" * 100]}
    response = await client.post("/api/jobs", json=body, headers=AUTH)
    assert response.status_code == 201, response.text
    job_id = uuid.UUID(response.json()["id"])
    status = job_status(db, job_id)
    assert status is not None
    # without repeats (stored sorted: leases lock keys in that order)
    assert status.rate_keys == tuple(sorted({"openai", BOLD, "é" * 100}))
    details = (await client.get(f"/api/jobs/{job_id}/details")).json()
    assert details["rate_keys"] == list(status.rate_keys)
    # none, or an empty list: a job without keys
    for keys in (None, []):
        plain = await client.post("/api/jobs", json={"name": "x", "rate_keys": keys}, headers=AUTH)
        assert plain.status_code == 201
        status = job_status(db, uuid.UUID(plain.json()["id"]))
        assert status is not None
        assert status.rate_keys == ()


async def test_bad_rate_keys_are_refused_naming_the_key(
    client: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    for keys, named in (
        (["ok", "cust*"], "'cust*'"),
        (["ok", ""], "''"),
        (["é" * 101], "is not a valid rate key: rate key must be at most 200 bytes"),
        (["a\x00b"], "'a\\x00b'"),
        ([f"k{i}" for i in range(17)], "at most 16"),
        (["ok", 3], "valid string"),
        ("openai", "valid list"),
    ):
        response = await client.post(
            "/api/jobs", json={"name": "limited", "rate_keys": keys}, headers=AUTH
        )
        assert response.status_code == 400, keys
        error = response.json()
        assert (error["error"], error["field"]) == ("bad_request", "rate_keys"), error
        assert named in error["detail"], error["detail"]
    assert db.execute("SELECT count(*) FROM mq_jobs").fetchone() == (0,)
