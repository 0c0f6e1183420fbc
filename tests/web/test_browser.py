"""The dashboard in a real browser: Playwright drives Chromium against the app served
by uvicorn on a free port of 127.0.0.1.

Without a Chromium (system, $SQLXMQ_TEST_CHROMIUM, or Playwright's own) these tests fail, never
skip, naming the command that installs one; the test run never installs anything itself.
Screenshots of the key pages are saved under each test's tmp_path and checked.
"""

from __future__ import annotations

import os
import re
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from sqlxmq_py import JobBuilder, spawn_many

from .conftest import TOKEN, LiveServer, failed_job
from .png import SIGNATURE, read_png

SYSTEM_BROWSERS = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
COMPLETED_GREEN = (0x2E, 0x9D, 0x5B)
FAILED_RED = (0xD6, 0x45, 0x45)


def _find_chromium() -> Path:
    """$SQLXMQ_TEST_CHROMIUM, else a system Chromium, else Playwright's own build. The test run
    never installs anything itself (CI installs a browser explicitly, in .ci/run): without one,
    the browser tests fail, never skip, saying how to install one."""
    configured = os.environ.get("SQLXMQ_TEST_CHROMIUM")
    if configured:
        return Path(configured)
    system = _system_chromium()
    if system is not None:
        return system
    with sync_playwright() as playwright:
        managed = Path(playwright.chromium.executable_path)
    if managed.exists():
        return managed
    pytest.fail(
        f"the browser tests need Chromium and found none (not at {', '.join(SYSTEM_BROWSERS)}, "
        f"nor Playwright's at {managed}, nor in $SQLXMQ_TEST_CHROMIUM); install one: "
        f"`{sys.executable} -m playwright install chromium`, or on Debian/Ubuntu "
        "`sudo apt-get install chromium`"
    )


def _system_chromium() -> Path | None:
    for candidate in SYSTEM_BROWSERS:
        if Path(candidate).exists():
            return Path(candidate)
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = _find_chromium()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    # the overview reloads itself every 5 s by default: off here, so that no test's page is
    # reloaded under it (test_the_overview_refreshes_itself_by_default checks the default)
    context.add_init_script(
        "try { window.localStorage.setItem('sqlxmq.autorefresh', '0'); } catch (e) {}"
    )
    try:
        yield context.new_page()
    finally:
        context.close()


def state_of(db: psycopg.Connection[Any], job_id: uuid.UUID) -> str | None:
    row = db.execute("SELECT state::text FROM mq_jobs WHERE id = %s", (job_id,)).fetchone()
    return None if row is None else str(row[0])


def seed(db: psycopg.Connection[Any]) -> uuid.UUID:
    """Jobs in three channels, a failed one, and a few minutes of runner counts."""
    spawn_many(
        db,
        [JobBuilder("resize_image").set_channel_name("images").set_json({"n": i}) for i in range(3)]
        + [JobBuilder("send_email").set_channel_name("emails").set_delay(600) for _ in range(2)],
    )
    db.execute(
        "INSERT INTO mq_stats (bucket, channel_name, completed, retried, failed) "
        "SELECT date_trunc('minute', now()) - make_interval(mins => m), 'images', 20 + m, m % 3, "
        "CASE WHEN m % 7 = 0 THEN 2 ELSE 0 END FROM generate_series(0, 40) AS m"
    )
    return failed_job(db, "render_pdf", "documents", payload={"invoice": 42})


def check_screenshot(path: Path, min_width: int, min_height: int) -> None:
    data = path.read_bytes()
    assert data.startswith(SIGNATURE)
    assert len(data) > 5_000
    image = read_png(data)
    assert image.width >= min_width
    assert image.height >= min_height


def test_overview_shows_queue_depth_per_channel_and_charts(
    page: Page, live_server: LiveServer, db: psycopg.Connection[Any], tmp_path: Path
) -> None:
    seed(db)
    page.goto(live_server.url + "/")
    table = page.locator("#queue-depth")
    expect(table.locator('tr[data-channel="images"] .count-ready')).to_have_text("3")
    expect(table.locator('tr[data-channel="emails"] .count-scheduled')).to_have_text("2")
    expect(table.locator('tr[data-channel="documents"] .count-failed')).to_have_text("1")
    expect(page.locator("#stat-queued")).to_have_text("6")
    expect(page.locator("#blocked-chains")).to_have_count(0)
    text = page.inner_text("body")
    for expected in ("images", "emails", "documents", "Throughput", "Blocked ordered chains"):
        assert expected in text

    shot = tmp_path / "overview.png"
    page.screenshot(path=str(shot), full_page=True)
    check_screenshot(shot, 1280, 900)
    chart = read_png(page.locator("#throughput-chart svg").screenshot())
    assert chart.count(COMPLETED_GREEN) > 2_000  # the bars were drawn
    failures = read_png(page.locator("#failures-chart svg").screenshot())
    assert failures.count(FAILED_RED) > 200

    page.locator('tr[data-channel="images"] a.count-ready').click()
    expect(page).to_have_url(re.compile(r"/jobs\?channel_name=images&state=ready$"))
    expect(page.locator("#job-table tbody tr")).to_have_count(3)


def test_job_list_filters(
    page: Page, live_server: LiveServer, db: psycopg.Connection[Any], tmp_path: Path
) -> None:
    failed = seed(db)
    page.goto(live_server.url + "/jobs")
    rows = page.locator("#job-table tbody tr")
    expect(rows).to_have_count(6)

    page.check('#job-filters input[name="state"][value="failed"]')
    page.click('#job-filters button[type="submit"]')
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-job-id", str(failed))
    expect(page.locator('#job-filters input[value="failed"]')).to_be_checked()

    page.uncheck('#job-filters input[name="state"][value="failed"]')
    page.fill('#job-filters input[name="channel_name"]', "emails")
    page.click('#job-filters button[type="submit"]')
    expect(rows).to_have_count(2)
    for state in rows.evaluate_all("rows => rows.map(r => r.dataset.state)"):
        assert state == "scheduled"

    page.fill('#job-filters input[name="channel_name"]', "")
    page.fill('#job-filters input[name="name"]', "resize_image")
    page.select_option('#job-filters select[name="limit"]', "20")
    page.click('#job-filters button[type="submit"]')
    expect(rows).to_have_count(3)
    assert set(rows.locator(".job-name").all_inner_texts()) == {"resize_image"}

    shot = tmp_path / "jobs.png"
    page.screenshot(path=str(shot), full_page=True)
    check_screenshot(shot, 1280, 600)
    assert "resize_image" in page.inner_text("#job-table")


def test_job_page_shows_the_error_of_a_failed_job(
    page: Page, live_server: LiveServer, db: psycopg.Connection[Any], tmp_path: Path
) -> None:
    failed = seed(db)
    page.goto(live_server.url + "/jobs?state=failed")
    page.click(f'tr[data-job-id="{failed}"] a')
    expect(page).to_have_url(f"{live_server.url}/jobs/{failed}")
    error = page.locator("#last-error")
    expect(error).to_contain_text("ValueError: image too large")
    expect(error.locator("pre.traceback")).to_contain_text("Traceback (most recent call last)")
    expect(page.locator("#payload pre")).to_contain_text('"invoice": 42')
    expect(page.locator("h1 .state")).to_have_text("failed")
    expect(page.get_by_text("Log in to retry or cancel")).to_be_visible()

    shot = tmp_path / "job.png"
    page.screenshot(path=str(shot), full_page=True)
    check_screenshot(shot, 1280, 600)
    text = page.inner_text("body")
    assert "render_pdf" in text
    assert "documents" in text


def test_retry_after_logging_in_makes_the_job_ready(
    page: Page, live_server: LiveServer, db: psycopg.Connection[Any]
) -> None:
    failed = seed(db)
    page.goto(f"{live_server.url}/jobs/{failed}")
    page.click("text=Log in to retry or cancel")
    expect(page).to_have_url(re.compile(r"/login\?next="))
    page.fill('input[name="token"]', "not the token")
    page.click('button[type="submit"]')
    expect(page.locator(".error-text")).to_have_text("That is not the token.")
    page.fill('input[name="token"]', TOKEN)
    page.click('button[type="submit"]')
    expect(page).to_have_url(f"{live_server.url}/jobs/{failed}")
    cookie = next(c for c in page.context.cookies() if c["name"] == "sqlxmq_session")
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Strict"

    assert state_of(db, failed) == "f"
    page.click('form[action="/actions/retry"] button')
    expect(page.locator(".flash")).to_have_text("Retried 1 job.")
    expect(page.locator("h1 .state")).to_have_text("ready")
    assert state_of(db, failed) == "r"

    # bulk cancel from the list: "select all" and the confirmation are app.js's
    page.goto(live_server.url + "/jobs?channel_name=emails")
    page.check("#select-all")
    expect(page.locator("input.pick:checked")).to_have_count(2)
    questions: list[str] = []

    def answer(dialog: Any) -> None:
        questions.append(dialog.message)
        dialog.accept()

    page.once("dialog", answer)
    page.click('#bulk-form button[formaction="/actions/cancel"]')
    expect(page.locator(".flash")).to_have_text("Cancelled 2 jobs.")
    assert questions == ["Cancel the selected jobs?"]
    assert db.execute("SELECT count(*) FROM mq_jobs WHERE channel_name = 'emails'").fetchone() == (
        0,
    )


def test_state_changes_from_another_origin_or_without_login_are_refused(
    browser: Browser, page: Page, live_server: LiveServer, db: psycopg.Connection[Any]
) -> None:
    failed = seed(db)
    # without a login: a same-origin form post carries no session
    page.goto(live_server.url + "/")
    page.evaluate(
        """id => {
            const form = document.createElement("form");
            form.method = "post";
            form.action = "/actions/retry";
            for (const [k, v] of [["id", id], ["csrf", "0".repeat(64)]]) {
                const input = document.createElement("input");
                input.name = k; input.value = v; form.appendChild(input);
            }
            document.body.appendChild(form);
            form.submit();
        }""",
        str(failed),
    )
    expect(page.locator(".error-page .message")).to_contain_text("Log in")
    assert state_of(db, failed) == "f"

    # logged in, but the form comes from another origin (even with the session's CSRF token)
    page.goto(live_server.url + "/login")
    page.fill('input[name="token"]', TOKEN)
    page.click('button[type="submit"]')
    page.goto(f"{live_server.url}/jobs/{failed}")
    csrf = page.get_attribute('form[action="/actions/retry"] input[name="csrf"]', "value")
    assert csrf
    attacker = (
        f'<form id="f" method="post" action="{live_server.url}/actions/retry">'
        f'<input name="id" value="{failed}"><input name="csrf" value="{csrf}"></form>'
        "<script>document.getElementById('f').submit()</script>"
    )
    page.route(
        "http://attacker.test/**",
        lambda route: route.fulfill(status=200, content_type="text/html", body=attacker),
    )
    page.goto("http://attacker.test/")
    page.wait_for_url(f"{live_server.url}/actions/retry")
    assert page.locator(".error-page h1").inner_text() == "403"
    assert "came from another site" in page.inner_text(".error-page .message")
    assert state_of(db, failed) == "f"


def test_api_docs_page_renders_the_generated_document_from_the_app_alone(
    page: Page, live_server: LiveServer, db: psycopg.Connection[Any], tmp_path: Path
) -> None:
    seed(db)
    elsewhere: list[str] = []
    problems: list[str] = []
    page.on(
        "request",
        lambda r: None if r.url.startswith(live_server.url) else elsewhere.append(r.url),
    )
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(live_server.url + "/")
    page.click('header nav a:has-text("API")')
    page.wait_for_url(live_server.url + "/api/docs")
    expect(page.locator(".opblock")).to_have_count(36)
    expect(page.locator(".info .title")).to_contain_text("sqlxmq_py HTTP API")
    for tag in ("jobs", "bulk", "queue", "channels"):
        expect(page.locator(f"#operations-tag-{tag}")).to_be_visible()
    shot = tmp_path / "api-docs.png"
    page.screenshot(path=str(shot), full_page=True)
    check_screenshot(shot, 1280, 900)

    # try a read from the page: the call goes to the app, under its content security policy
    counts = page.locator("#operations-queue-getCounts")
    counts.locator(".opblock-summary").click()
    counts.locator("button.try-out__btn").click()
    counts.locator("button.execute").click()
    expect(
        counts.locator(".live-responses-table tr.response .response-col_status").first
    ).to_have_text("200")
    expect(counts.locator(".live-responses-table .microlight").first).to_contain_text('"counts"')
    assert elsewhere == []
    assert problems == []


def test_the_overview_refreshes_itself_by_default(
    browser: Browser, live_server: LiveServer, tmp_path: Path
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        fresh = context.new_page()
        fresh.goto(live_server.url + "/")
        expect(fresh.locator("#autorefresh")).to_be_checked()
        fresh.uncheck("#autorefresh")  # turned off once: remembered
        fresh.reload()
        expect(fresh.locator("#autorefresh")).not_to_be_checked()
    finally:
        context.close()


def test_operator_pages_workers_channels_and_schedules(
    page: Page, live_server: LiveServer, db: psycopg.Connection[Any], tmp_path: Path
) -> None:
    seed(db)
    db.execute(
        "INSERT INTO mq_listeners (id, channel_names, idle, host, pid, version, "
        "min_concurrency, max_concurrency, heartbeat_at) VALUES "
        "(gen_random_uuid(), ARRAY['images'], false, 'worker-1', 4242, '0.1.0', 10, 20, now()), "
        "(gen_random_uuid(), NULL, true, 'worker-2', 777, '0.1.0', 16, 32, "
        "now() - interval '2 minutes')"
    )
    db.execute(
        "INSERT INTO mq_schedules (name, cron, timezone, job_name, channel_name, payload_json, "
        "backfill, last_tick) VALUES ('nightly-report', '0 3 * * *', 'Europe/Paris', "
        "'report', 'reports', '{\"kind\": \"daily\"}', interval '2 hours', now())"
    )
    page.goto(live_server.url + "/login")
    page.fill('input[name="token"]', TOKEN)
    page.click('button[type="submit"]')

    page.goto(live_server.url + "/workers")
    text = page.inner_text("body")
    for expected in ("worker-1", "4242", "worker-2", "stale"):
        assert expected in text
    shot = tmp_path / "workers.png"
    page.screenshot(path=str(shot), full_page=True)
    check_screenshot(shot, 1280, 600)

    page.goto(live_server.url + "/channels")
    row = page.locator('tr[data-channel="emails"]')
    row.locator('button:has-text("Pause")').click()
    expect(page.locator('tr[data-channel="emails"]')).to_contain_text("paused")
    assert db.execute(
        "SELECT paused FROM mq_channel_limits WHERE channel_name = 'emails'"
    ).fetchone() == (True,)
    shot = tmp_path / "channels.png"
    page.screenshot(path=str(shot), full_page=True)
    check_screenshot(shot, 1280, 600)
    page.goto(live_server.url + "/")
    expect(page.locator("body")).to_contain_text("Paused")

    page.goto(live_server.url + "/schedules")
    text = page.inner_text("body")
    for expected in ("nightly-report", "0 3 * * *", "Europe/Paris"):
        assert expected in text
    shot = tmp_path / "schedules.png"
    page.screenshot(path=str(shot), full_page=True)
    check_screenshot(shot, 1280, 600)
