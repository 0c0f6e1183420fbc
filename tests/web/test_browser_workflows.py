"""The workflow graph page, a job's workflow and rate-key facts, and the rate-limits page in a
real browser (Chromium via Playwright, as test_browser.py): the graph drawn with each step's
state (a step named ``<script>`` shown as text), from a step's box to its job and back, the
failed step retried from its row; a rule
set through the form, listed, then removed; a key with ``<b>`` shown as text. Screenshots of
each page are saved under the test's tmp_path and checked."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
from playwright.sync_api import Page, expect

from sqlxmq_py import JobBuilder
from sqlxmq_py.admin import list_rate_limits, set_rate_limit
from sqlxmq_py.pull import complete, fail, fetch
from sqlxmq_py.workflow import Workflow

from .conftest import TOKEN, LiveServer
from .test_browser import browser, check_screenshot, page
from .test_rate_limits_api import fill_window

__all__ = ["browser", "page"]  # the fixtures, shared with test_browser.py

EVIL = "<script>window.pwned = 1</script>"
BOLD = "customer:<b>acme</b>"


def _shoot(page: Page, path: Path) -> None:
    page.screenshot(path=str(path), full_page=True)
    check_screenshot(path, 1280, 600)


def _login(page: Page, live_server: LiveServer) -> None:
    page.goto(live_server.url + "/login")
    page.fill('input[name="token"]', TOKEN)
    page.click('button[type="submit"]')


def test_the_workflow_graph_and_a_steps_job_page(
    page: Page, live_server: LiveServer, db: psycopg.Connection[Any], tmp_path: Path
) -> None:
    wf = Workflow("nightly etl")
    wf.add("extract", JobBuilder("extract").set_channel_name("wf-a"))
    wf.add("transform", JobBuilder("transform").set_channel_name("wf-b"), after=["extract"])
    wf.add(EVIL, JobBuilder("check").set_channel_name("wf-c").set_retries(0), after=["extract"])
    wf.add("load", JobBuilder("load"), after=["transform", EVIL], on_parent_failure="skip")
    wf.add("report", JobBuilder("report").add_rate_key(BOLD), after=["extract"])
    spawned = wf.spawn(db)
    (a,) = fetch(db, ["wf-a"])
    complete(db, a, result={"rows": 12})
    (c,) = fetch(db, ["wf-c"])
    assert fail(db, c, "check failed: " + EVIL) == "failed"
    # the report step's key is spent: its page says until when it waits
    set_rate_limit(db, "customer:*", 1, per=timedelta(hours=1))
    fill_window(db, BOLD, 1, "1 hour")

    page.goto(f"{live_server.url}/workflows/{spawned.id}")
    graph = page.locator("#workflow-graph")
    expect(graph.locator("g.step")).to_have_count(5)
    expect(graph.locator('g.step[data-step="extract"]')).to_have_attribute(
        "data-state", "completed"
    )
    expect(graph.locator(f'g.step[data-step="{EVIL}"]')).to_have_attribute("data-state", "failed")
    expect(graph.locator('g.step[data-step="load"]')).to_have_attribute("data-state", "skipped")
    expect(graph.locator("path.edge")).to_have_count(5)
    assert page.evaluate("window.pwned") is None  # the step's name is text, not a script
    expect(page.locator("body")).to_contain_text(EVIL)
    expect(page.locator('#workflow-steps tr[data-step="report"] .rate-wait')).to_contain_text(
        f"waits for rate key {BOLD} until "
    )
    _shoot(page, tmp_path / "workflow.png")

    # from the failed step's box to its job, and back through the job page's workflow link
    graph.locator(f'g.step[data-step="{EVIL}"]').click()
    expect(page).to_have_url(f"{live_server.url}/jobs/{spawned.step_ids[EVIL]}")
    expect(page.locator("#job-workflow")).to_contain_text(f"step {EVIL} of nightly etl")
    _shoot(page, tmp_path / "workflow-step-job.png")
    page.locator("#job-workflow a").first.click()
    expect(page).to_have_url(f"{live_server.url}/workflows/{spawned.id}")

    page.goto(f"{live_server.url}/jobs/{spawned.step_ids['report']}")
    expect(page.locator("#job-rate-keys")).to_have_text(BOLD)
    expect(page.locator(".rate-wait")).to_contain_text(f"waits for rate key {BOLD} until ")
    _shoot(page, tmp_path / "rate-waiting-job.png")

    # logged in, the failed step is retried from its row: its box turns ready, its parent's
    # skipped child waits again
    _login(page, live_server)
    page.goto(f"{live_server.url}/workflows/{spawned.id}")
    page.locator(f'#workflow-steps tr[data-step="{EVIL}"] button:has-text("Retry")').click()
    expect(page.locator(".flash")).to_contain_text(f"Retrying step '{EVIL}'.")
    expect(graph.locator(f'g.step[data-step="{EVIL}"]')).to_have_attribute("data-state", "ready")
    expect(graph.locator('g.step[data-step="load"]')).to_have_attribute("data-state", "waiting")
    expect(page.locator("#workflow-steps button")).to_have_count(0)
    _shoot(page, tmp_path / "workflow-retried.png")


def test_the_rate_limits_page_sets_lists_and_removes_a_rule(
    page: Page, live_server: LiveServer, db: psycopg.Connection[Any], tmp_path: Path
) -> None:
    set_rate_limit(db, "openai", 50, per=timedelta(minutes=1))
    fill_window(db, "openai", 20, "1 minute")
    _login(page, live_server)
    page.goto(live_server.url + "/rate-limits")
    expect(page.locator('nav a[aria-current="page"]')).to_have_text("Rate limits")
    form = page.locator("#rate-limit-set")
    form.locator('input[name="pattern"]').fill("customer:*")
    form.locator('input[name="max_starts"]').fill("3")
    form.locator('input[name="period_s"]').fill("3600")
    form.locator('button[type="submit"]').click()
    expect(page.locator(".flash")).to_contain_text("Rule 'customer:*': 3 starts per 3600 s.")
    row = page.locator('#rate-rules tr[data-pattern="customer:*"]')
    expect(row).to_contain_text("a budget per key")
    expect(row).to_contain_text("60 min")
    assert [r.key_pattern for r in list_rate_limits(db)] == ["customer:*", "openai"]

    # a key under the new rule, spent: listed first, as text
    fill_window(db, BOLD, 3, "1 hour")
    page.reload()
    keys = page.locator("#rate-keys tbody tr")
    expect(keys).to_have_count(2)
    expect(keys.first).to_have_attribute("data-key", BOLD)
    expect(keys.first).to_contain_text("spent until")
    expect(keys.nth(1)).to_contain_text("now")
    assert page.locator("#rate-keys b").count() == 0
    _shoot(page, tmp_path / "rate-limits.png")

    questions: list[str] = []

    def answer(dialog: Any) -> None:
        questions.append(dialog.message)
        dialog.accept()

    page.once("dialog", answer)
    row.locator('button:has-text("Remove")').click()
    expect(page.locator(".flash")).to_contain_text("Removed the rule 'customer:*'.")
    expect(page.locator('#rate-rules tr[data-pattern="customer:*"]')).to_have_count(0)
    assert questions
    assert "Remove this rule?" in questions[0]
    assert [r.key_pattern for r in list_rate_limits(db)] == ["openai"]
    _shoot(page, tmp_path / "rate-limits-removed.png")
