"""The dashboard's bulk flow in a real browser (Chromium via Playwright, as test_browser.py):
filter the job list, have the jobs matching the filter counted before anything changes, then
retry or cancel all of them, on every page, not only the one shown; the database says what
changed and what did not. Screenshots of each step are saved under the test's tmp_path and
checked."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import psycopg
from playwright.sync_api import Page, expect

from sqlxmq_py import JobBuilder, spawn_many

from .conftest import TOKEN, LiveServer, failed_job
from .test_browser import browser, check_screenshot, page

__all__ = ["browser", "page"]  # the fixtures, shared with test_browser.py

FAILED = 23  # more than the 20 the list shows per page


def _states(db: psycopg.Connection[Any], ids: list[uuid.UUID]) -> list[str | None]:
    rows = dict(
        db.execute("SELECT id, state::text FROM mq_jobs WHERE id = ANY(%s)", (ids,)).fetchall()
    )
    return [rows.get(i) for i in ids]


def _shoot(page: Page, path: Path) -> None:
    page.screenshot(path=str(path), full_page=True)
    check_screenshot(path, 1280, 600)


def test_bulk_retry_and_cancel_count_first_then_change_every_match(
    page: Page, live_server: LiveServer, db: psycopg.Connection[Any], tmp_path: Path
) -> None:
    quota = [
        failed_job(db, "resize", "images", error=f"quota exceeded ({n})") for n in range(FAILED)
    ]
    other_failure = failed_job(db, "resize", "images", error="disk full")
    elsewhere = failed_job(db, "render_pdf", "documents", error="quota exceeded (pdf)")
    later = spawn_many(
        db, [JobBuilder("send_email").set_channel_name("emails").set_delay(600) for _ in range(3)]
    )
    ready = JobBuilder("send_email").set_channel_name("emails").spawn(db)
    page.goto(live_server.url + "/login?next=/jobs")
    page.fill('input[name="token"]', TOKEN)
    page.click('button[type="submit"]')
    expect(page).to_have_url(live_server.url + "/jobs")

    # filter: the failed jobs of one channel; the list shows one page of them
    page.check('#job-filters input[name="state"][value="failed"]')
    page.fill('#job-filters input[name="channel_name"]', "images")
    page.select_option('#job-filters select[name="limit"]', "20")
    page.click('#job-filters button[type="submit"]')
    expect(page.locator("#job-table tbody tr")).to_have_count(20)
    bulk = page.locator("#bulk-matching")
    bulk.locator('input[name="error"]').fill("quota")
    bulk.locator('select[name="action"]').select_option("retry")
    _shoot(page, tmp_path / "bulk-1-filtered.png")

    # the count comes first, and counting changes nothing
    bulk.locator('button[type="submit"]').click()
    confirm = page.locator("#bulk-confirm")
    expect(confirm.locator("h1")).to_have_text(f"Retry all {FAILED} matching jobs?")
    # the step restates what it counted, the filters the list does not show included
    expect(page.locator("#bulk-filters")).to_have_text(
        "Matching: state failed · channel images · error contains quota"
    )
    expect(confirm.locator('button[type="submit"]')).to_have_text(f"Retry {FAILED} jobs")
    _shoot(page, tmp_path / "bulk-2-confirm-retry.png")
    assert set(_states(db, quota)) == {"f"}

    confirm.locator('button[type="submit"]').click()
    expect(page.locator(".flash")).to_have_text(f"Retried {FAILED} jobs.")
    _shoot(page, tmp_path / "bulk-3-retried.png")
    assert set(_states(db, quota)) == {"r"}  # every page of them, not only the 20 shown
    assert _states(db, [other_failure, elsewhere]) == ["f", "f"]  # outside the filter

    # cancel: every scheduled job of the emails channel; the ready one is outside the filter
    page.goto(live_server.url + "/jobs?state=scheduled&channel_name=emails")
    expect(page.locator("#job-table tbody tr")).to_have_count(3)
    bulk.locator('select[name="action"]').select_option("cancel")
    bulk.locator('button[type="submit"]').click()
    expect(confirm.locator("h1")).to_have_text("Cancel all 3 matching jobs?")
    expect(page.locator("#bulk-filters")).to_have_text("Matching: state scheduled · channel emails")
    _shoot(page, tmp_path / "bulk-4-confirm-cancel.png")
    assert set(_states(db, later)) == {"s"}
    confirm.locator('button[type="submit"]').click()
    expect(page.locator(".flash")).to_have_text("Cancelled 3 jobs.")
    expect(page.locator("#job-table")).to_have_count(0)  # the filtered list is empty now
    _shoot(page, tmp_path / "bulk-5-cancelled.png")
    assert _states(db, later) == [None, None, None]
    kept = db.execute(
        "SELECT state, last_error FROM mq_history WHERE id = ANY(%s)", (later,)
    ).fetchall()
    assert kept == [("cancelled", "cancelled from the dashboard")] * 3
    assert _states(db, [ready]) == ["r"]

    # a filter that matches nothing this action applies to says so, and changes nothing
    page.goto(live_server.url + "/jobs?channel_name=documents")
    bulk.locator('select[name="action"]').select_option("cancel")
    bulk.locator('button[type="submit"]').click()
    expect(confirm.locator("h1")).to_have_text("No job to cancel")
    assert _states(db, [elsewhere]) == ["f"]
