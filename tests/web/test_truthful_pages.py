"""A job's page says why a job waits (behind which job of its ordered chain, for how many
parents, for which commit) instead of a past "runs at"; the overview refreshes itself unless
turned off."""

from __future__ import annotations

import html
import re
from typing import Any

import httpx
import psycopg

from sqlxmq_py import CurrentJob, job


@job(channel_name="truth")
async def step(current_job: CurrentJob) -> None: ...


def _facts(page: str) -> str:
    match = re.search(r'<dl class="facts">(.*?)</dl>', page, re.S)
    assert match is not None
    return match.group(1)


async def test_a_job_behind_its_chain_names_the_job_before_it(
    client: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    first = step.builder().set_ordered().spawn(db)
    second = step.builder().set_ordered().spawn(db)
    facts = _facts((await client.get(f"/jobs/{second}")).text)
    assert "waits</dt>" in facts
    assert "behind <a" in facts
    assert str(first) in facts
    assert "runs at" not in facts


async def test_a_continuation_says_how_many_parents_it_waits_for(
    client: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    parents = [step.builder().set_delay(3600).spawn(db) for _ in range(2)]
    child = step.builder().set_after(parents).spawn(db)
    facts = _facts((await client.get(f"/jobs/{child}")).text)
    assert "for 2 parent jobs to finish" in facts
    assert "runs at" not in facts


async def test_an_uncommitted_job_waits_for_its_commit(
    client: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    job_id = step.builder().set_commit_interval(600).spawn(db)
    facts = _facts((await client.get(f"/jobs/{job_id}")).text)
    assert html.escape("for the transaction that spawned it to commit") in facts
    assert "discarded if not committed by" in facts
    assert "runs at" not in facts


async def test_ready_and_scheduled_jobs_say_since_and_when(
    client: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    ready = step.builder().spawn(db)
    later = step.builder().set_delay(3600).spawn(db)
    assert "ready since</dt>" in _facts((await client.get(f"/jobs/{ready}")).text)
    scheduled = _facts((await client.get(f"/jobs/{later}")).text)
    assert "runs at</dt>" in scheduled
    assert "from now" in scheduled or "in " in scheduled


async def test_the_overview_refreshes_itself_unless_turned_off(client: httpx.AsyncClient) -> None:
    page = (await client.get("/")).text
    assert 'id="autorefresh"' in page
    script = (await client.get("/static/app.js")).text
    assert 'getItem(key) !== "0"' in script  # on by default; "0" once the user turns it off
