"""The dashboard's pages and form actions, in process through httpx (the browser tests drive the
same pages in Chromium)."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import psycopg
import pytest
from starlette.applications import Starlette

from sqlxmq_py import JobBuilder, admin, spawn_many
from sqlxmq_py.admin import _counts as admin_counts
from sqlxmq_py.pull import complete, fail, fetch
from sqlxmq_py.web import create_app

from .conftest import ERROR_TEXT, TOKEN, failed_job

SAME_ORIGIN = {"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"}


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]{64})"', html)
    assert match, "no CSRF field on the page"
    return match.group(1)


async def login(client: httpx.AsyncClient) -> str:
    """Logs in with the token; returns the session's CSRF token."""
    response = await client.post(
        "/login", data={"token": TOKEN, "next": "/jobs"}, headers=SAME_ORIGIN
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/jobs"
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
    assert "Path=/" in cookie
    return csrf_of((await client.get("/")).text)


def state_of(db: psycopg.Connection[Any], job_id: uuid.UUID) -> str | None:
    row = db.execute("SELECT state::text FROM mq_jobs WHERE id = %s", (job_id,)).fetchone()
    return None if row is None else str(row[0])


async def test_overview_shows_queue_depth_per_channel(
    client: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    spawn_many(db, [JobBuilder("resize").set_channel_name("images") for _ in range(3)])
    spawn_many(db, [JobBuilder("send").set_channel_name("emails").set_delay(60) for _ in range(2)])
    JobBuilder("misc").spawn(db)  # the default channel ""
    failed_job(db, "resize", "broken")
    page = await client.get("/")
    assert page.status_code == 200
    html = page.text
    rows = dict(re.findall(r'<tr data-channel="([^"]*)">(.*?)</tr>', html, flags=re.S))
    assert set(rows) == {"", "broken", "emails", "images"}
    assert re.search(r'class="count count-ready">3<', rows["images"])
    assert re.search(r'class="count count-scheduled">2<', rows["emails"])
    assert re.search(r'class="count count-failed">1<', rows["broken"])
    assert "(default)" in rows[""]
    assert 'href="/jobs?default_channel=1"' in rows[""]
    assert 'id="stat-queued">7<' in html
    assert 'id="stat-failed">1<' in html
    assert "test queue" in html  # the title
    assert "No finished attempts in this period" in html


async def test_overview_labels_estimated_counts(
    client: httpx.AsyncClient, db: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    spawn_many(db, [JobBuilder("resize").set_channel_name("big") for _ in range(400)])
    spawn_many(db, [JobBuilder("send").set_channel_name("small") for _ in range(3)])
    JobBuilder("flaky").set_channel_name("flaky").set_retries(2).spawn(db)
    (leased,) = fetch(db, ["flaky"], limit=1, lease=60)
    assert fail(db, leased, "again", delay=3600) == "retrying"
    exact = (await client.get("/")).text
    assert "≈" not in exact
    assert 'id="estimates-hint"' not in exact
    assert 'id="stat-queued">404<' in exact
    rows = dict(re.findall(r'<tr data-channel="([^"]*)">(.*?)</tr>', exact, flags=re.S))
    assert re.search(r'class="count count-scheduled">1<', rows["flaky"])  # retrying counts here

    db.execute("ANALYZE mq_jobs")
    monkeypatch.setattr(admin, "ESTIMATE_ABOVE", 50)  # what the page says
    monkeypatch.setattr(admin, "ESTIMATE_SAMPLE_ROWS", 100)
    monkeypatch.setattr(admin_counts, "ESTIMATE_ABOVE", 50)  # what queue_counts does
    monkeypatch.setattr(admin_counts, "ESTIMATE_SAMPLE_ROWS", 100)
    html = (await client.get("/")).text
    rows = dict(re.findall(r'<tr data-channel="([^"]*)">(.*?)</tr>', html, flags=re.S))
    assert re.search(
        r'class="count count-ready"><span class="estimate" title="[^"]*">≈', rows["big"]
    )
    assert re.search(r'class="count count-ready">3<', rows["small"])  # small counts stay exact
    assert re.search(r'id="stat-queued"><span class="estimate"[^>]*>≈', html)
    assert 'id="estimates-hint"' in html
    assert "up to 50 jobs of a channel in a state are counted exactly" in html
    assert re.search(r'id="stat-oldest"><span class="estimate"[^>]*>≥', html)

    counts = (await client.get("/api/counts")).json()
    assert counts["exact"] is False
    by_key = {(c["channel_name"], c["state"]): c for c in counts["counts"]}
    assert by_key["big", "ready"]["exact"] is False
    assert by_key["big", "ready"]["count"] > 50
    assert by_key["small", "ready"] == {
        "channel_name": "small",
        "state": "ready",
        "count": 3,
        "exact": True,
        "oldest_ready_age_s": by_key["small", "ready"]["oldest_ready_age_s"],
    }
    assert by_key["flaky", "retrying"]["count"] == 1


async def test_overview_charts_draw_the_runners_counts(
    client: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    db.execute(
        "INSERT INTO mq_stats (bucket, channel_name, completed, retried, failed) VALUES "
        "(date_trunc('minute', now()), 'images', 40, 3, 2), "
        "(date_trunc('minute', now()) - interval '5 minutes', 'emails', 10, 0, 0), "
        "(date_trunc('minute', now()) - interval '2 hours', 'emails', 99, 0, 0)"
    )
    html = (await client.get("/")).text
    chart = html[html.index('id="throughput-chart"') : html.index('id="failures-chart"')]
    assert len(re.findall(r'class="bar bar-completed"', chart)) == 2
    assert ": 40 completed</title>" in chart
    assert ": 3 retried</title>" in chart
    assert ": 2 failed</title>" in chart
    assert "50 completed, 3 retried, 2 failed for good" in html
    one = (await client.get("/", params={"channel": "emails", "minutes": 360})).text
    assert "109 completed, 0 retried, 0 failed for good" in one
    assert "per 3 minutes" in one


async def test_job_list_filters_and_pages(
    client: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    images = spawn_many(db, [JobBuilder("resize").set_channel_name("images") for _ in range(4)])
    keyed = JobBuilder("send").set_channel_name("emails").set_job_key("welcome:ada").spawn(db)
    default = JobBuilder("misc").spawn(db)
    broken = failed_job(db, "resize", "broken")

    async def listed(**params: Any) -> list[str]:
        response = await client.get("/jobs", params=params)
        assert response.status_code == 200
        return re.findall(r'<tr data-job-id="([^"]+)"', response.text)

    assert await listed() == [str(i) for i in [broken, default, keyed, *images[::-1]]]
    assert await listed(state="failed") == [str(broken)]
    assert await listed(channel_name="images", name="", job_key="") == [
        str(i) for i in images[::-1]
    ]
    assert await listed(default_channel="1") == [str(default)]
    assert await listed(job_key="welcome:ada") == [str(keyed)]
    assert await listed(name="send") == [str(keyed)]
    first = await client.get("/jobs", params={"channel_name": "images", "limit": 3})
    assert re.findall(r'<tr data-job-id="([^"]+)"', first.text) == [str(i) for i in images[:0:-1]]
    next_url = re.search(r'<a href="([^"]+)" rel="next"', first.text)
    assert next_url
    second = await client.get(next_url.group(1).replace("&amp;", "&"))
    assert re.findall(r'<tr data-job-id="([^"]+)"', second.text) == [str(images[0])]
    assert 'rel="next"' not in second.text
    bad = await client.get("/jobs", params={"state": "asleep"})
    assert bad.status_code == 400
    assert "unknown state" in bad.text
    # the channel filter offers the channels that have jobs (the default one has no name)
    datalist = re.search(r'<datalist id="known-channels">(.*?)</datalist>', first.text)
    assert datalist
    assert re.findall(r'<option value="([^"]*)">', datalist.group(1)) == [
        "broken",
        "emails",
        "images",
    ]


async def test_job_page_shows_everything_about_a_job(
    client: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    head = failed_job(db, "entry", "ledger", ordered=True, payload={"amount": 12, "memo": "rent"})
    behind = spawn_many(
        db,
        [
            JobBuilder("entry")
            .set_channel_name("ledger")
            .set_ordered()
            .set_raw_bytes(bytes(range(40)))
            .set_header("traceparent", "00-1234-abcd-01")
            for _ in range(2)
        ],
    )
    child = JobBuilder("report").set_after([behind[0]]).spawn(db)

    html = (await client.get(f"/jobs/{head}")).text
    assert ERROR_TEXT.replace('"', "&#34;") in html
    assert "ValueError: image too large</strong>" in html  # the summary line
    assert "&#34;amount&#34;: 12" in html  # pretty-printed
    assert "Position <strong>1</strong> of 3" in html
    assert "Log in to retry or cancel" in html

    middle = (await client.get(f"/jobs/{behind[0]}")).text
    assert "Position <strong>2</strong> of 3" in middle
    assert f'<span id="chain-previous"><a class="mono" href="/jobs/{head}">' in middle
    assert f'<span id="chain-next"><a class="mono" href="/jobs/{behind[1]}">' in middle
    assert '<strong id="binary-size">40 bytes</strong>' in middle
    assert "00 01 02 03" in middle
    assert "traceparent" in middle
    assert "00-1234-abcd-01" in middle
    assert f'href="/jobs/{child}"' in middle  # a continuation waits for it

    child_html = (await client.get(f"/jobs/{child}")).text
    assert f'href="/jobs/{behind[0]}"' in child_html  # its parent


async def test_job_page_of_a_kept_job_shows_its_result(
    client: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    job_id = JobBuilder("kept").set_channel_name("done").set_retain_for(600).spawn(db)
    (leased,) = fetch(db, ["done"], limit=1)
    complete(db, leased, result={"pages": 3})
    html = (await client.get(f"/jobs/{job_id}")).text
    assert 'class="state state-completed"' in html
    assert '<section class="card" id="result">' in html
    assert "&#34;pages&#34;: 3" in html
    missing = await client.get(f"/jobs/{uuid.uuid4()}")
    assert missing.status_code == 404
    assert "neither queued nor kept" in missing.text
    malformed = await client.get("/jobs/123")
    assert malformed.status_code == 400


async def test_everything_shown_is_escaped(
    client: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    evil = "<script>alert(1)</script>"
    failed_job(db, evil, evil, error=f"Traceback:\n{evil}", payload={"html": evil})
    JobBuilder(evil).set_channel_name("x").set_channel_args(evil).set_job_key(evil).spawn(db)
    pages = [(await client.get(path)).text for path in ("/", "/jobs", f"/jobs?name={evil}")]
    for job_id in re.findall(r'<tr data-job-id="([^"]+)"', pages[1]):
        pages.append((await client.get(f"/jobs/{job_id}")).text)
    for html in pages:
        assert "<script>alert" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


async def test_security_headers(client: httpx.AsyncClient) -> None:
    for path in ("/", "/jobs", "/login", "/api/counts", "/static/style.css"):
        response = await client.get(path)
        policy = response.headers["content-security-policy"]
        assert "script-src 'self'" in policy
        assert "frame-ancestors 'none'" in policy
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"
    assert "unsafe-inline" not in policy


async def test_retry_needs_login_csrf_and_the_same_origin(
    client: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    job_id = failed_job(db)
    form = {"id": str(job_id), "next": f"/jobs/{job_id}"}

    anonymous = await client.post("/actions/retry", data=form, headers=SAME_ORIGIN)
    assert anonymous.status_code == 403
    assert "Log in" in anonymous.text

    csrf = await login(client)
    no_csrf = await client.post("/actions/retry", data=form, headers=SAME_ORIGIN)
    assert no_csrf.status_code == 403
    assert "CSRF" in no_csrf.text
    wrong_csrf = await client.post(
        "/actions/retry", data={**form, "csrf": "0" * 64}, headers=SAME_ORIGIN
    )
    assert wrong_csrf.status_code == 403
    for headers in (
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site", "Origin": "http://sub.testserver"},
    ):
        refused = await client.post("/actions/retry", data={**form, "csrf": csrf}, headers=headers)
        assert refused.status_code == 403, headers
        assert "Refused" in refused.text
    assert state_of(db, job_id) == "f"

    done = await client.post("/actions/retry", data={**form, "csrf": csrf}, headers=SAME_ORIGIN)
    assert done.status_code == 303
    assert done.headers["location"] == f"/jobs/{job_id}"
    assert state_of(db, job_id) == "r"
    page = (await client.get(f"/jobs/{job_id}")).text
    assert '<div class="flash" role="status">Retried 1 job.</div>' in page
    again = (await client.get(f"/jobs/{job_id}")).text
    assert 'class="flash"' not in again  # shown once

    # clients that send neither header (curl) are left to the CSRF token
    plain = await client.post("/actions/retry", data={**form, "csrf": csrf})
    assert plain.status_code == 303


async def test_cancel_and_purge_forms(
    client: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    waiting = spawn_many(db, [JobBuilder("later").set_delay(600) for _ in range(2)])
    broken = failed_job(db)
    csrf = await login(client)
    form = {
        "csrf": csrf,
        "next": "/jobs",
        "reason": "duplicate",
        "id": [str(i) for i in [*waiting, uuid.uuid4()]],
    }
    response = await client.post("/actions/cancel", data=form, headers=SAME_ORIGIN)
    assert response.status_code == 303
    flash = (await client.get("/jobs")).text
    assert "Cancelled 2 jobs. 1 already finished or unknown." in flash
    status = db.execute("SELECT state, last_error FROM mq_history ORDER BY id").fetchall()
    assert status == [("cancelled", "duplicate"), ("cancelled", "duplicate")]

    purge = {"csrf": csrf, "next": "/", "failed_days": "0", "history_days": "0"}
    response = await client.post("/actions/purge", data=purge, headers=SAME_ORIGIN)
    assert response.status_code == 303
    assert "Purged 1 failed job and 2 history entries." in (await client.get("/")).text
    assert state_of(db, broken) is None
    bad = await client.post(
        "/actions/purge", data={**purge, "failed_days": "-3"}, headers=SAME_ORIGIN
    )
    assert bad.status_code == 400
    nothing = await client.post("/actions/retry", data={"csrf": csrf}, headers=SAME_ORIGIN)
    assert nothing.status_code == 400


async def test_login_logout_and_redirects(client: httpx.AsyncClient) -> None:
    wrong = await client.post("/login", data={"token": "guess"}, headers=SAME_ORIGIN)
    assert wrong.status_code == 401
    assert "That is not the token." in wrong.text
    assert "set-cookie" not in wrong.headers
    cross = await client.post(
        "/login", data={"token": TOKEN}, headers={"Origin": "http://evil.example"}
    )
    assert cross.status_code == 403
    for target in ("//evil.example/", "http://evil.example/", "/\\evil.example", "jobs"):
        response = await client.post(
            "/login", data={"token": TOKEN, "next": target}, headers=SAME_ORIGIN
        )
        assert response.headers["location"] == "/", target
    csrf = await login(client)
    assert "Log out" in (await client.get("/")).text
    out = await client.post("/logout", data={"csrf": csrf}, headers=SAME_ORIGIN)
    assert out.status_code == 303
    assert "Log in" in (await client.get("/")).text


@pytest.fixture
async def read_only(dsn: str) -> Any:
    app = create_app(dsn)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://testserver") as c,
    ):
        yield c


async def test_read_only_dashboard_refuses_every_change(
    read_only: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    job_id = failed_job(db)
    assert "read-only" in (await read_only.get("/")).text
    assert "started without a token" in (await read_only.get("/login")).text
    login_attempt = await read_only.post("/login", data={"token": TOKEN}, headers=SAME_ORIGIN)
    assert login_attempt.status_code == 403
    for action in ("retry", "cancel", "purge"):
        response = await read_only.post(
            f"/actions/{action}", data={"id": str(job_id)}, headers=SAME_ORIGIN
        )
        assert response.status_code == 403
        assert "started without a token" in response.text
    assert state_of(db, job_id) == "f"


async def test_forms_must_be_urlencoded(client: httpx.AsyncClient) -> None:
    response = await client.post("/actions/retry", json={"id": "x"}, headers=SAME_ORIGIN)
    assert response.status_code == 415


def test_app_contract(dsn: str) -> None:
    assert isinstance(create_app(dsn, token=TOKEN, title="t"), Starlette)
    with pytest.raises(ValueError, match="token"):
        create_app(dsn, token="  ")


async def test_an_interrupted_job_shows_its_interruptions_and_the_overview_counts_them(
    client: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    job_id = JobBuilder("deploy").set_channel_name("reports").spawn(db)
    for _ in range(2):  # leased, then handed back by a stopping runner, twice
        (leased,) = fetch(db, ["reports"])
        token = db.execute("SELECT lease_token FROM mq_jobs WHERE id = %s", (leased.id,))
        row = token.fetchone()
        assert row is not None
        released = db.execute(
            "SELECT outcome FROM mq_release(ARRAY[%s]::uuid[], ARRAY[%s]::uuid[], %s, true)",
            (job_id, row[0], "web-7:4242"),
        )
        assert released.fetchall() == [("interrupted",)]
    db.execute(
        "INSERT INTO mq_stats (bucket, channel_name, interrupted) "
        "VALUES (date_trunc('minute', now()), 'reports', 2)"
    )
    db.commit()

    html = (await client.get(f"/jobs/{job_id}")).text
    shown = html[html.index('id="job-interrupted"') :]
    assert shown.startswith('id="job-interrupted">2 times (attempts not counted), last at ')
    assert "by web-7:4242</dd>" in shown
    assert "0 interrupted" not in (await client.get("/")).text
    assert "2 interrupted" in (await client.get("/")).text

    status = (await client.get(f"/api/jobs/{job_id}")).json()
    assert (status["attempts"], status["state"]) == (0, "ready")
    assert status["interrupted"]["count"] == 2
    assert status["interrupted"]["last_by"] == "web-7:4242"
