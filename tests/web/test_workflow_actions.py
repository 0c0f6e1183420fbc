"""The workflow page's forms: retry a failed step and cancel the workflow, refused without
login, CSRF token or same origin; the forms shown only when they apply; a step named
``<script>`` carried as text in its form."""

from __future__ import annotations

import html
from typing import Any

import httpx
import psycopg

from sqlxmq_py.admin import workflow_status

from .test_pages import SAME_ORIGIN, login
from .test_workflows_api import EVIL, failed_workflow


async def test_retry_a_step_and_cancel_from_the_page(
    client: httpx.AsyncClient, conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    spawned = failed_workflow(conn)
    page_url = f"/workflows/{spawned.id}"
    anonymous = (await client.get(page_url)).text
    assert "/actions/workflow-retry" not in anonymous
    assert "Log in to cancel it or retry a step" in anonymous
    form = {"workflow": str(spawned.id), "step": EVIL, "next": page_url}
    assert (
        await client.post("/actions/workflow-retry", data=form, headers=SAME_ORIGIN)
    ).status_code == 403
    csrf = await login(client)
    for data, headers in [
        (form, SAME_ORIGIN),
        ({**form, "csrf": "0" * 64}, SAME_ORIGIN),
        ({**form, "csrf": csrf}, {"Origin": "http://evil.example"}),
    ]:
        for action in ("workflow-retry", "workflow-cancel"):
            refused = await client.post(f"/actions/{action}", data=data, headers=headers)
            assert refused.status_code == 403, (action, headers)
    status = workflow_status(db, spawned.id)
    assert status is not None
    assert status.step(EVIL).state == "failed"

    page = (await client.get(page_url)).text
    assert EVIL not in page
    # one retry form, for the failed step, its name escaped in the hidden field
    assert page.count('action="/actions/workflow-retry"') == 1
    assert f'name="step" value="{html.escape(EVIL)}"' in page
    assert 'id="workflow-cancel"' in page
    bad = await client.post(
        "/actions/workflow-retry",
        data={**form, "csrf": csrf, "step": "extract"},
        headers=SAME_ORIGIN,
    )
    assert bad.status_code == 409
    done = await client.post(
        "/actions/workflow-retry", data={**form, "csrf": csrf}, headers=SAME_ORIGIN
    )
    assert (done.status_code, done.headers["location"]) == (303, page_url)
    status = workflow_status(db, spawned.id)
    assert status is not None
    assert status.step(EVIL).display == "ready"
    assert "Retrying step" in (await client.get(page_url)).text

    cancelled = await client.post(
        "/actions/workflow-cancel", data={**form, "csrf": csrf}, headers=SAME_ORIGIN
    )
    assert cancelled.status_code == 303
    status = workflow_status(db, spawned.id)
    assert status is not None
    assert status.state == "cancelled"
    after = (await client.get(page_url)).text
    assert "Cancelled workflow" in after
    assert 'id="workflow-cancel"' not in after
    assert "/actions/workflow-retry" not in after
    unknown = await client.post(
        "/actions/workflow-cancel",
        data={"workflow": "0192f5d2-7c1e-7a41-9b6e-3c0d1f2a4b5c", "csrf": csrf},
        headers=SAME_ORIGIN,
    )
    assert unknown.status_code == 404
    malformed = await client.post(
        "/actions/workflow-cancel", data={"workflow": "nope", "csrf": csrf}, headers=SAME_ORIGIN
    )
    assert malformed.status_code == 400
