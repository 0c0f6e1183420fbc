"""Typed payloads and results (issue 10.1), and jobs that could never run refused before the
runner starts (issue 10.2)."""

from __future__ import annotations

import asyncio
import datetime
import decimal
import uuid
from dataclasses import dataclass
from typing import Any, TypedDict

import psycopg
import pydantic
import pytest
from psycopg_pool import AsyncConnectionPool

from sqlxmq_py import (
    BlockingCurrentJob,
    ConfigurationError,
    CurrentJob,
    JobRegistry,
    PayloadError,
    job,
)
from sqlxmq_py.admin import job_status

from ..helpers import Runner, job_row, wait_until


@dataclass
class Invoice:
    number: int
    customer: str
    issued: datetime.datetime
    ref: uuid.UUID
    total: decimal.Decimal
    lines: list[str]


class Labels(TypedDict):
    name: str
    weight: int


class Order(pydantic.BaseModel):
    order_id: int
    items: list[str]


@dataclass
class Receipt:
    number: int
    paid: decimal.Decimal


seen: list[object] = []


@job(retries=0)
async def bill(current_job: CurrentJob[Invoice]) -> Receipt:
    invoice = current_job.payload
    seen.append(invoice)
    return Receipt(number=invoice.number, paid=invoice.total)


@job(retries=0)
def label(current_job: BlockingCurrentJob[Labels]) -> None:
    seen.append(current_job.payload)


@job(retries=0)
async def ship(current_job: CurrentJob[Order]) -> None:
    seen.append(current_job.payload)


INVOICE = Invoice(
    number=7,
    customer="Ada",
    issued=datetime.datetime(2026, 12, 4, 12, 30, tzinfo=datetime.UTC),
    ref=uuid.UUID("12345678-1234-5678-1234-567812345678"),
    total=decimal.Decimal("19.90"),
    lines=["a", "b"],
)


async def test_typed_payloads_round_trip_and_arrive_validated(
    conn: psycopg.Connection[Any], runner: Runner
) -> None:
    seen.clear()
    ids = [
        bill.builder().set_json(INVOICE).spawn(conn),
        label.builder().set_json({"name": "fragile", "weight": 3}).spawn(conn),
        ship.builder().set_json(Order(order_id=1, items=["x"])).spawn(conn),
    ]
    conn.commit()
    stored = conn.execute(
        "SELECT payload_json::text FROM mq_payloads WHERE id = %s", (ids[0],)
    ).fetchone()
    # datetimes, UUIDs and decimals as the type's own encoding writes them
    assert stored == (
        '{"number":7,"customer":"Ada","issued":"2026-12-04T12:30:00Z","ref":'
        '"12345678-1234-5678-1234-567812345678","total":"19.90","lines":["a","b"]}',
    )
    async with runner([bill, label, ship]):
        await wait_until(lambda: len(seen) == 3)
    assert INVOICE in seen
    assert {"name": "fragile", "weight": 3} in seen
    assert Order(order_id=1, items=["x"]) in seen


async def test_a_typed_result_comes_back_as_its_declared_type(
    dsn: str, conn: psycopg.Connection[Any], runner: Runner
) -> None:
    job_id = bill.builder().set_json(INVOICE).set_retain_for(60).spawn(conn)
    conn.commit()
    async with runner([bill]), AsyncConnectionPool(dsn, open=False) as pool:
        receipt = await bill.wait_for_result(pool, job_id, timeout=10)
    assert receipt == Receipt(number=7, paid=decimal.Decimal("19.90"))
    with psycopg.connect(dsn, autocommit=True) as c:
        assert bill.wait_for_result(c, job_id, timeout=10) == receipt  # the sync twin


def test_a_payload_of_the_wrong_type_is_refused_at_spawn() -> None:
    with pytest.raises(PayloadError, match="expected Invoice, got dict"):
        bill.builder().set_json({"number": 7})  # type: ignore[arg-type]
    with pytest.raises(PayloadError, match="expected Order, got Invoice"):
        ship.builder().set_json(INVOICE)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("typed", "raw", "field"),
    [
        (bill, '{"number": "seven"}', "$.number"),
        (label, '{"name": "x", "weight": "heavy"}', "$.weight"),
        (label, '{"name": "x"}', "weight"),
        (ship, '{"order_id": 1, "items": "x"}', "items"),
        (bill, "null", "Invoice"),
    ],
)
async def test_a_payload_that_does_not_validate_fails_naming_the_field_and_is_kept(
    conn: psycopg.Connection[Any],
    db: psycopg.Connection[Any],
    runner: Runner,
    typed: Any,
    raw: str,
    field: str,
) -> None:
    """Written around the type (raw JSON, another language, an older version of the job)."""
    job_id = typed.builder().set_raw_json(raw).spawn(conn)
    conn.commit()
    async with runner([typed]):
        await wait_until(lambda: (job_row(db, job_id) or {}).get("state") == "f")
    row = job_row(db, job_id)
    assert row is not None
    assert row["last_error"].startswith("PayloadError: payload of job")
    assert field in row["last_error"].splitlines()[0]
    assert row["payload_json"] == raw  # kept as it was, to fix or retry


async def test_an_untyped_job_keeps_plain_json(
    conn: psycopg.Connection[Any], runner: Runner
) -> None:
    got: list[object] = []

    @job
    async def plain(current_job: CurrentJob) -> None:
        got.append((current_job.payload, current_job.json()))

    plain.builder().set_json({"any": ["json", 1, None]}).spawn(conn)
    conn.commit()
    async with runner([plain]):
        await wait_until(lambda: bool(got))
    assert got == [({"any": ["json", 1, None]}, {"any": ["json", 1, None]})]


async def test_a_job_that_could_never_run_is_refused_before_the_runner_starts(
    dsn: str, conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    """``async def send(current_job, to: str)`` used to be accepted and to fail every attempt
    ("needs a context value of type str"); now run() refuses it, and no attempt is spent."""

    @job
    async def send(current_job: CurrentJob, to: str) -> None: ...

    job_id = send.builder().set_json({"to": "a@example.com"}).spawn(conn)
    conn.commit()
    with pytest.raises(ConfigurationError) as refused:
        await JobRegistry([send]).runner(dsn).run()
    message = str(refused.value)
    assert "parameter 'to' (str)" in message
    assert "CurrentJob[Email]" in message  # it shows the typed-payload form
    row = job_row(db, job_id)
    assert row is not None
    assert (row["state"], row["attempts"]) == ("r", 0)
    status = job_status(db, job_id)
    assert status is not None


async def test_a_context_value_given_later_makes_it_runnable(
    dsn: str, conn: psycopg.Connection[Any], runner: Runner
) -> None:
    @dataclass
    class Mailer:
        sent: list[str]

    mailer = Mailer(sent=[])

    @job
    async def send(current_job: CurrentJob, mailer: Mailer) -> None:
        mailer.sent.append(current_job.json()["to"])

    send.builder().set_json({"to": "a@example.com"}).spawn(conn)
    conn.commit()
    async with runner(JobRegistry([send]).set_context(mailer)):
        await wait_until(lambda: mailer.sent == ["a@example.com"])
    await asyncio.sleep(0)
