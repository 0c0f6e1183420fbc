"""A job's page and details answer name the workflow step the job is (a link to its workflow
page), its rate keys, and, while it waits to start, each spent key with the instant it allows a
start again; a failed job waits for nothing. Step names and keys with markup are escaped."""

from __future__ import annotations

import html
from datetime import timedelta
from typing import Any

import httpx
import psycopg

from sqlxmq_py import BlockingCurrentJob, JobBuilder, job
from sqlxmq_py.admin import job_status, set_rate_limit
from sqlxmq_py.pull import fail, fetch
from sqlxmq_py.workflow import Workflow

from .test_rate_limits_api import fill_window

EVIL = "<script>alert(1)</script>"
BOLD = "<b>k</b>"


@job(retries=0)
def wf_link_step(current_job: BlockingCurrentJob) -> None:
    """A step the test never runs."""


async def test_a_step_links_to_its_workflow(
    client: httpx.AsyncClient, conn: psycopg.Connection[Any]
) -> None:
    wf = Workflow("wf " + EVIL)
    wf.add(EVIL, wf_link_step.builder())
    spawned = wf.spawn(conn)
    conn.commit()
    job_id = spawned.step_ids[EVIL]
    page = (await client.get(f"/jobs/{job_id}")).text
    assert EVIL not in page
    assert (
        f'<dd id="job-workflow">step <a href="/workflows/{spawned.id}"><strong>'
        f"{html.escape(EVIL)}</strong></a> of "
        f'<a href="/workflows/{spawned.id}">wf {html.escape(EVIL)}</a></dd>'
    ) in page
    details = (await client.get(f"/api/jobs/{job_id}/details")).json()
    assert details["workflow"] == {
        "workflow_id": str(spawned.id),
        "workflow_name": "wf " + EVIL,
        "step": EVIL,
    }
    assert (details["rate_keys"], details["rate_waits"]) == ([], [])
    # a job of no workflow
    plain = JobBuilder("plain").spawn(conn)
    conn.commit()
    assert 'id="job-workflow"' not in (await client.get(f"/jobs/{plain}")).text
    assert (await client.get(f"/api/jobs/{plain}/details")).json()["workflow"] is None


async def test_rate_keys_and_why_a_job_waits(
    client: httpx.AsyncClient, conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    set_rate_limit(db, "<b>*", 2, per=timedelta(hours=1))
    fill_window(db, BOLD, 2, "1 hour")
    waiting = JobBuilder("limited").set_rate_keys([BOLD, "free"]).spawn(conn)
    conn.commit()
    status = job_status(db, waiting)
    assert status is not None
    assert status.state == "ready"
    (wait,) = status.rate_waits
    assert wait.key == BOLD
    page = (await client.get(f"/jobs/{waiting}")).text
    assert "<b>" not in page
    assert (
        '<dd id="job-rate-keys"><code>&lt;b&gt;k&lt;/b&gt;</code>, <code>free</code></dd>' in page
    )
    assert (
        '<dd class="rate-wait">waits for rate key <code>&lt;b&gt;k&lt;/b&gt;</code> until ' in page
    )
    details = (await client.get(f"/api/jobs/{waiting}/details")).json()
    assert details["rate_keys"] == [BOLD, "free"]
    assert details["rate_waits"] == [{"key": BOLD, "until": wait.until.isoformat()}]


async def test_a_failed_job_waits_for_no_rate_key(
    client: httpx.AsyncClient, conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    failed = JobBuilder("limited").set_channel_name("rl").set_retries(0).add_rate_key(BOLD)
    job_id = failed.spawn(conn)
    conn.commit()
    (leased,) = fetch(conn, ["rl"])
    assert fail(conn, leased, "boom") == "failed"
    conn.commit()
    set_rate_limit(db, BOLD, 1, per=timedelta(hours=1))
    fill_window(db, BOLD, 1, "1 hour")
    status = job_status(db, job_id)
    assert status is not None
    assert status.rate_waits
    page = (await client.get(f"/jobs/{job_id}")).text
    assert 'id="job-rate-keys"' in page
    assert "rate-wait" not in page  # ...but a failed job waits for nothing
    details = (await client.get(f"/api/jobs/{job_id}/details")).json()
    assert (details["rate_keys"], details["rate_waits"]) == ([BOLD], [])


async def test_a_workflow_shows_which_step_waits_for_a_spent_key(
    client: httpx.AsyncClient, conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    wf = Workflow("limited")
    wf.add("held", wf_link_step.builder().add_rate_key(BOLD))
    wf.add("running", wf_link_step.builder().set_channel_name("wf-run").add_rate_key(BOLD))
    wf.add("free", wf_link_step.builder().add_rate_key("unruled"))
    spawned = wf.spawn(conn)
    conn.commit()
    fetch(conn, ["wf-run"], lease=60)  # running: a spent key holds it back no more
    conn.commit()
    set_rate_limit(db, BOLD, 1, per=timedelta(hours=1))
    fill_window(db, BOLD, 1, "1 hour")
    steps = {
        s["name"]: s for s in (await client.get(f"/api/workflows/{spawned.id}")).json()["steps"]
    }
    (wait,) = steps["held"]["rate_waits"]
    assert wait["key"] == BOLD
    assert (steps["running"]["display"], steps["running"]["rate_waits"]) == ("running", [])
    assert steps["free"]["rate_waits"] == []
    page = (await client.get(f"/workflows/{spawned.id}")).text
    assert "<b>" not in page
    assert page.count('<div class="rate-wait muted">waits for rate key') == 1
    assert "<code>&lt;b&gt;k&lt;/b&gt;</code> until " in page
    # its box in the graph says so too
    assert page.count(" · rate-limited</text>") == 1
    assert "held: ready; waits for rate key &lt;b&gt;k&lt;/b&gt; until " in page
