"""Prometheus metrics: runner hooks count every outcome; the queue is read at scrape time."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import psycopg
import pytest
import structlog
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from sqlxmq_py import CurrentJob, job, spawn_many
from sqlxmq_py.admin import cancel, job_status
from sqlxmq_py.metrics import PrometheusHooks, QueueCollector, metrics_asgi_app

from ..helpers import Runner, wait_until


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    found = registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def state(db: psycopg.Connection[Any], job_id: uuid.UUID) -> str | None:
    status = job_status(db, job_id)
    return None if status is None else status.state


async def test_hooks_count_every_outcome_per_job_and_channel(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    registry = CollectorRegistry()
    hooks = PrometheusHooks(registry)
    release = asyncio.Event()

    @job(channel_name="metered", retries=1, backoff=0)
    async def work(current_job: CurrentJob) -> None:
        kind = current_job.json()
        if kind == "flaky" and current_job.attempt == 1:
            raise RuntimeError("once")
        if kind == "broken":
            raise RuntimeError("always")
        if kind == "slow":
            await release.wait()
        if kind == "cancel":
            while not current_job.cancelled:  # noqa: ASYNC110 - the request is a flag
                await asyncio.sleep(0.02)
            raise RuntimeError("stopped on request")

    ids = spawn_many(
        conn,
        [
            work.builder().set_json("ok"),
            work.builder().set_json("flaky"),
            work.builder().set_json("broken").set_retries(0),
            work.builder().set_json("slow").set_lease(1.5),  # renewed every 0.5 s
            work.builder().set_json("cancel").set_lease(1.5),
        ],
    )
    conn.commit()
    labels = {"job_name": work.name, "channel": "metered"}
    async with runner([work], hooks=[hooks]):
        await wait_until(lambda: state(db, ids[4]) == "running")
        assert cancel(db, [ids[4]]) == {ids[4]: "requested"}
        await wait_until(
            lambda: value(registry, "sqlxmq_lease_renewals_total", result="renewed") > 0
        )
        release.set()
        await wait_until(
            lambda: (
                value(registry, "sqlxmq_jobs_completed_total", **labels) == 3
                and value(registry, "sqlxmq_jobs_cancelled_total", **labels) == 1
                and value(registry, "sqlxmq_jobs_failed_total", **labels) == 1
            )
        )
    assert value(registry, "sqlxmq_jobs_started_total", **labels) == 6  # flaky twice
    assert value(registry, "sqlxmq_jobs_retried_total", **labels) == 1
    assert value(registry, "sqlxmq_jobs_lease_lost_total", **labels) == 0
    assert value(registry, "sqlxmq_jobs_running", **labels) == 0
    done = {**labels, "outcome": "completed"}
    assert value(registry, "sqlxmq_job_duration_seconds_count", **done) == 3
    assert value(registry, "sqlxmq_job_duration_seconds_sum", **done) > 0
    assert value(registry, "sqlxmq_runner_jobs_leased_total") >= 6
    assert value(registry, "sqlxmq_runner_polls_total") >= 1


@job(channel_name="mail")
async def send_mail(current_job: CurrentJob) -> None: ...


@job(channel_name="ledger", ordered=True)
async def entry(current_job: CurrentJob) -> None: ...


@pytest.fixture
def queue(conn: psycopg.Connection[Any], db: psycopg.Connection[Any]) -> None:
    """Three ready mails (the oldest waiting 90 s) and a ledger chain stopped by its head."""
    mails = spawn_many(conn, [send_mail.builder() for _ in range(3)])
    head, *_ = spawn_many(conn, [entry.builder().set_json(i) for i in range(3)])
    conn.commit()
    db.execute("UPDATE mq_jobs SET attempt_at = now() - interval '90 s' WHERE id = %s", (mails[0],))
    db.execute("UPDATE mq_jobs SET state = 'f', lease_token = NULL WHERE id = %s", (head,))


@pytest.mark.usefixtures("queue")
def test_queue_collector_reads_depth_age_and_blocked_chains(dsn: str) -> None:
    registry = CollectorRegistry()
    registry.register(QueueCollector(dsn))

    def jobs(channel: str, state: str) -> float | None:
        return registry.get_sample_value("sqlxmq_queue_jobs", {"channel": channel, "state": state})

    assert jobs("mail", "ready") == 3
    assert jobs("mail", "running") == 0  # every state is reported, 0 when empty
    assert jobs("ledger", "waiting") == 2
    assert jobs("ledger", "failed") == 1
    age = registry.get_sample_value("sqlxmq_queue_oldest_ready_age_seconds", {"channel": "mail"})
    assert age is not None
    assert 90 <= age < 600
    assert value(registry, "sqlxmq_queue_oldest_ready_age_seconds", channel="ledger") == 0
    assert value(registry, "sqlxmq_queue_blocked_chains", channel="ledger") == 1
    assert value(registry, "sqlxmq_queue_blocked_chains", channel="mail") == 0
    assert value(registry, "sqlxmq_queue_up") == 1


def test_queue_collector_on_an_unreachable_database_reports_down() -> None:
    registry = CollectorRegistry()
    registry.register(QueueCollector("postgresql://u:pw-kept-secret@127.0.0.1:1/x", timeout=2))
    with structlog.testing.capture_logs() as logs:
        text = generate_latest(registry).decode()
    assert "sqlxmq_queue_up 0.0" in text
    assert "sqlxmq_queue_jobs{" not in text
    (failure,) = [e for e in logs if e["event"] == "queue_metrics_failed"]
    assert "pw-kept-secret" not in repr(failure)


@pytest.mark.usefixtures("queue")
async def test_asgi_app_serves_queue_and_job_metrics(dsn: str) -> None:
    registry = CollectorRegistry()
    PrometheusHooks(registry).polled(5, 8)
    app = metrics_asgi_app(dsn, registry=registry)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        response = await client.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text)
            for s in family.samples
        }
        assert samples[("sqlxmq_queue_jobs", (("channel", "mail"), ("state", "ready")))] == 3
        assert samples[("sqlxmq_runner_jobs_leased_total", ())] == 5

        openmetrics = await client.get(
            "/", headers={"accept": "application/openmetrics-text; version=1.0.0"}
        )
        assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
        assert openmetrics.text.endswith("# EOF\n")

        assert (await client.post("/metrics")).status_code == 405


async def test_asgi_app_serves_the_global_registry_by_default(dsn: str) -> None:
    counter = Counter("sqlxmq_test_app_events", "An application metric")  # global REGISTRY
    try:
        counter.inc()
        app = metrics_asgi_app(dsn)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://test"
        ) as client:
            text = (await client.get("/metrics")).text
        assert "sqlxmq_test_app_events_total 1.0" in text
        assert "sqlxmq_queue_up 1.0" in text
    finally:
        from prometheus_client import REGISTRY

        REGISTRY.unregister(counter)
