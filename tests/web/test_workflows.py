"""The workflow page (``/workflows/{id}``): the graph as SVG with each step's state, every
name and error escaped, and the refusals (unknown workflow, bad id)."""

from __future__ import annotations

import html
from typing import Any

import httpx
import psycopg

from sqlxmq_py import BlockingCurrentJob, job
from sqlxmq_py.pull import complete, fail, fetch
from sqlxmq_py.workflow import Workflow

EVIL = "<script>alert(1)</script>"


@job(retries=0)
def wf_page_step(current_job: BlockingCurrentJob) -> None:
    """A step settled by the test with the pull API."""


async def test_the_graph_with_each_steps_state_escaped(
    client: httpx.AsyncClient, conn: psycopg.Connection[Any]
) -> None:
    wf = Workflow(EVIL)
    wf.add("extract", wf_page_step.builder().set_channel_name("wfp-a"))
    wf.add(EVIL, wf_page_step.builder().set_channel_name("wfp-b"), after=["extract"])
    wf.add("load", wf_page_step.builder(), after=["extract", EVIL], on_parent_failure="skip")
    spawned = wf.spawn(conn)
    conn.commit()
    (a,) = fetch(conn, ["wfp-a"])
    complete(conn, a)
    conn.commit()
    (b,) = fetch(conn, ["wfp-b"])
    fail(conn, b, EVIL, delay=0)
    conn.commit()
    page = await client.get(f"/workflows/{spawned.id}")
    assert page.status_code == 200
    body = page.text
    assert EVIL not in body
    assert html.escape(EVIL, quote=False) in body
    assert '<svg id="workflow-graph"' in body
    assert body.count('<g class="step"') == 3
    assert 'data-step="extract" data-state="completed"' in body
    assert f'data-step="{html.escape(EVIL)}" data-state="failed"' in body
    assert 'data-step="load" data-state="skipped"' in body
    assert body.count('<path class="edge"') == 3
    assert f'href="/jobs/{spawned.step_ids["load"]}"' in body
    assert 'id="workflow-state">failed<' in body
    assert "http://" not in body.replace("http://www.w3.org/2000/svg", "")


async def test_unknown_and_bad_ids(client: httpx.AsyncClient) -> None:
    missing = await client.get("/workflows/0192f5d2-7c1e-7a41-9b6e-3c0d1f2a4b5c")
    assert missing.status_code == 404
    assert "does not exist" in missing.text
    bad = await client.get("/workflows/nope")
    assert bad.status_code == 400


async def test_the_list_links_each_workflow_escaped(
    client: httpx.AsyncClient, conn: psycopg.Connection[Any]
) -> None:
    empty = await client.get("/workflows")
    assert empty.status_code == 200
    assert "No workflows" in empty.text
    wf = Workflow(EVIL)
    wf.add("a", wf_page_step.builder())
    spawned = wf.spawn(conn)
    conn.commit()
    page = await client.get("/workflows")
    assert page.status_code == 200
    assert EVIL not in page.text
    assert html.escape(EVIL, quote=False) in page.text
    assert f'href="/workflows/{spawned.id}"' in page.text
