"""Bad input: builder options and payloads explored with hypothesis, rows written by SQL that the
runner cannot use, 10 MB payloads, and names made of quotes, NULs, SQL and non-ASCII.

The promise (DESIGN.md, "Bad input"): a value the builder accepts spawns and round-trips through
the row; a value it refuses raises a typed error naming the option; whatever a job row holds is
run or recorded as failed, never dropped, and never stops the runner.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import psycopg
import pytest
import structlog
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sqlxmq_py import (
    Checkpoint,
    ConfigurationError,
    CurrentJob,
    JobBuilder,
    JobRegistry,
    PayloadError,
    clear,
    exists,
    job,
    spawn_many,
)

from ..helpers import count_jobs, job_row, running, wait_until

# a fixed sequence of examples in the default stage (no flakiness); the slow stage explores more
FAST = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
THOROUGH = settings(FAST, max_examples=300, derandomize=False)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
# every code point, lone surrogates included (st.text() leaves those out)
any_text = st.text(st.characters(codec=None, categories=None), max_size=40) | st.sampled_from(
    ["\ud800", "a\udfffb", "\x00", "x\x00"]
)
durations = (
    st.timedeltas(min_value=timedelta(0))
    | st.integers(min_value=0, max_value=10**15)
    | st.floats(min_value=0, allow_nan=False, allow_infinity=False)
)


def reset(db: psycopg.Connection[Any]) -> None:
    db.execute("DELETE FROM mq_jobs")
    db.execute("DELETE FROM mq_payloads")


def accepted(option: str, set_value: Callable[[], object]) -> bool:
    """Applies a setter: True if it accepted the value, False if it refused it with a typed
    error naming the option (anything else fails the test)."""
    refused: Exception | None = None
    try:
        set_value()
    except (ConfigurationError, PayloadError) as exc:
        refused = exc
    if refused is None:
        return True
    assert option in str(refused), f"the error does not name {option!r}: {refused}"
    return False


def spawned_row(db: psycopg.Connection[Any], builder: JobBuilder) -> dict[str, Any]:
    """Spawns the builder's job (any error the database raises fails the test) and returns its
    row."""
    job_id = builder.spawn(db)
    row = job_row(db, job_id)
    assert row is not None
    return row


def as_timedelta(value: timedelta | float) -> timedelta:
    return value if isinstance(value, timedelta) else timedelta(seconds=value)


@job
async def echo(current_job: CurrentJob) -> None:
    """Hands what it was given back to the test."""
    seen.put(current_job.id, (current_job.raw_json(), current_job.json(), current_job.raw_bytes()))


class Seen:
    """What jobs running on a runner's thread saw, by job id."""

    def __init__(self) -> None:
        self._items: dict[uuid.UUID, Any] = {}
        self._changed = threading.Condition()

    def put(self, job_id: uuid.UUID, item: Any) -> None:
        with self._changed:
            self._items[job_id] = item
            self._changed.notify_all()

    def get(self, job_id: uuid.UUID, timeout: float = 10.0) -> Any:
        with self._changed:
            assert self._changed.wait_for(lambda: job_id in self._items, timeout), job_id
            return self._items.pop(job_id)


seen = Seen()


@contextmanager
def runner_thread(dsn: str, registry: JobRegistry) -> Iterator[None]:
    """A runner on its own thread and event loop, for synchronous (hypothesis) tests."""
    ready = threading.Event()
    errors: list[BaseException] = []
    stop: list[Callable[[], None]] = []

    async def main() -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        stop.append(lambda: loop.call_soon_threadsafe(stopping.set))
        async with running(dsn, registry, poll_interval=0.2):
            ready.set()
            await stopping.wait()

    def run() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:
            errors.append(exc)
            ready.set()

    thread = threading.Thread(target=run)
    thread.start()
    ready.wait(30)
    try:
        assert not errors, errors
        yield
    finally:
        for request_stop in stop:
            request_stop()
        thread.join(30)
    assert not errors, errors


# --- builder options: accepted values round-trip through spawn and the row ---


def check_durations(
    db: psycopg.Connection[Any],
    delay: Any,
    backoff: Any,
    lease: Any,
    commit_interval: Any,
) -> None:
    reset(db)
    builder = echo.builder()
    values: dict[str, timedelta | None] = {  # the builder's defaults
        "delay": timedelta(0),
        "retry_backoff": timedelta(seconds=1),
        "lease": None,
        "commit_interval": None,
    }
    for option, value, setter in [
        ("delay", delay, builder.set_delay),
        ("retry_backoff", backoff, builder.set_retry_backoff),
        ("lease", lease, builder.set_lease),
        ("commit_interval", commit_interval, builder.set_commit_interval),
    ]:
        if accepted(option, functools.partial(setter, value)):
            values[option] = None if value is None else as_timedelta(value)
    job_id = builder.spawn(db)  # any error the database raises fails the test
    # compared in SQL: PostgreSQL's timestamps reach further than Python's datetime
    row = db.execute(
        "SELECT j.attempt_at = p.created_at + %(delay)s::interval,"
        " j.commit_deadline IS NOT DISTINCT FROM p.created_at + %(commit_interval)s::interval,"
        " j.lease IS NOT DISTINCT FROM %(lease)s::interval,"
        " p.retry_backoff = %(retry_backoff)s::interval,"
        " j.state::text"
        " FROM mq_jobs AS j JOIN mq_payloads AS p USING (id) WHERE id = %(id)s",
        {**values, "id": job_id},
    ).fetchone()
    assert row is not None
    delay_ok, deadline_ok, lease_ok, backoff_ok, state = row
    assert (delay_ok, deadline_ok, lease_ok, backoff_ok) == (True, True, True, True), values
    assert state == ("u" if values["commit_interval"] else "s" if values["delay"] else "r")


@FAST
@given(delay=durations, backoff=durations, lease=durations, commit_interval=durations)
@example(delay=timedelta.max, backoff=timedelta.max, lease=timedelta.max, commit_interval=None)
@example(delay=0, backoff=0, lease=None, commit_interval=timedelta.max)
def test_accepted_durations_spawn_and_round_trip(
    db: psycopg.Connection[Any], delay: Any, backoff: Any, lease: Any, commit_interval: Any
) -> None:
    check_durations(db, delay, backoff, lease, commit_interval)


def check_texts(db: psycopg.Connection[Any], name: str, channel_name: str, args: str) -> None:
    reset(db)
    if not accepted("name", lambda: JobBuilder(name)):
        return
    builder = JobBuilder(name)
    names_ok = accepted("channel_name", lambda: builder.set_channel_name(channel_name))
    args_ok = accepted("channel_args", lambda: builder.set_channel_args(args))
    row = spawned_row(db, builder)
    assert row["name"] == name
    assert row["channel_name"] == (channel_name if names_ok else "")
    assert row["channel_args"] == (args if args_ok else "")


@FAST
@given(name=any_text, channel_name=any_text, args=any_text)
def test_accepted_names_channels_and_args_spawn_and_round_trip(
    db: psycopg.Connection[Any], name: str, channel_name: str, args: str
) -> None:
    check_texts(db, name, channel_name, args)


def check_numbers(db: psycopg.Connection[Any], retries: Any, priority: Any, ordered: Any) -> None:
    reset(db)
    builder = echo.builder()
    retries_ok = accepted("retries", lambda: builder.set_retries(retries))
    priority_ok = accepted("priority", lambda: builder.set_priority(priority))
    ordered_ok = accepted("ordered", lambda: builder.set_ordered(ordered))
    row = spawned_row(db, builder)
    assert row["max_attempts"] == (retries + 1 if retries_ok else 5)
    assert row["priority"] == (priority if priority_ok else 0)
    assert (row["ord_seq"] is not None) == (ordered if ordered_ok else False)
    assert row["state"] == "r"  # alone in its chain, no delay


flags = st.sampled_from([True, False, 0, 1, None, "yes", 1.0])
ints_and_impostors = st.integers(min_value=-(2**40), max_value=2**40) | st.sampled_from(
    [2**31 - 2, 2**31 - 1, 2**31, -(2**31), True, False, 1.0, "3", None]
)


@FAST
@given(retries=ints_and_impostors, priority=ints_and_impostors, ordered=flags)
def test_accepted_counts_and_flags_spawn_and_round_trip(
    db: psycopg.Connection[Any], retries: Any, priority: Any, ordered: Any
) -> None:
    check_numbers(db, retries, priority, ordered)


def check_payloads(
    db: psycopg.Connection[Any], value: Any, raw_json: str, raw_bytes: bytes | None
) -> None:
    reset(db)
    row = spawned_row(db, echo.builder().set_json(value).set_raw_bytes(raw_bytes))
    assert json.loads(row["payload_json"]) == value
    assert row["payload_bytes"] == raw_bytes
    row = spawned_row(db, echo.builder().set_raw_json(raw_json))
    assert row["payload_json"] == raw_json  # stored exactly


raw_json_texts = st.builds(
    json.dumps,
    json_values,
    indent=st.none() | st.integers(0, 3),
    ensure_ascii=st.booleans(),
    sort_keys=st.booleans(),
)


@FAST
@given(value=json_values, raw_json=raw_json_texts, raw_bytes=st.none() | st.binary(max_size=300))
def test_payloads_round_trip_through_the_row(
    db: psycopg.Connection[Any], value: Any, raw_json: str, raw_bytes: bytes | None
) -> None:
    check_payloads(db, value, raw_json, raw_bytes)


def check_running_payload(
    db: psycopg.Connection[Any], value: Any, raw_json: str, raw_bytes: bytes | None
) -> None:
    first = echo.builder().set_json(value).set_raw_bytes(raw_bytes).spawn(db)
    second = echo.builder().set_raw_json(raw_json).spawn(db)
    raw, decoded, data = seen.get(first)
    assert decoded == value
    assert raw == json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    assert data == raw_bytes
    raw, decoded, data = seen.get(second)
    assert raw == raw_json
    assert decoded == json.loads(raw_json)
    assert data is None


def test_running_jobs_see_the_payloads_they_were_spawned_with(
    dsn: str, db: psycopg.Connection[Any]
) -> None:
    @FAST
    @given(value=json_values, raw_json=raw_json_texts, raw_bytes=st.none() | st.binary())
    def check(value: Any, raw_json: str, raw_bytes: bytes | None) -> None:
        check_running_payload(db, value, raw_json, raw_bytes)

    with runner_thread(dsn, JobRegistry([echo])):
        check()
    assert count_jobs(db) == 0


@pytest.mark.slow
def test_builder_and_payload_properties_thorough(dsn: str, db: psycopg.Connection[Any]) -> None:
    """The properties above with many more random examples."""

    @THOROUGH
    @given(durations, durations, durations, durations)
    def durations_round_trip(delay: Any, backoff: Any, lease: Any, commit_interval: Any) -> None:
        check_durations(db, delay, backoff, lease, commit_interval)

    @THOROUGH
    @given(any_text, any_text, any_text)
    def texts_round_trip(name: str, channel_name: str, args: str) -> None:
        check_texts(db, name, channel_name, args)

    @THOROUGH
    @given(ints_and_impostors, ints_and_impostors, flags)
    def numbers_round_trip(retries: Any, priority: Any, ordered: Any) -> None:
        check_numbers(db, retries, priority, ordered)

    @THOROUGH
    @given(json_values, raw_json_texts, st.none() | st.binary())
    def payloads_round_trip(value: Any, raw_json: str, raw_bytes: bytes | None) -> None:
        check_payloads(db, value, raw_json, raw_bytes)

    @THOROUGH
    @given(json_values, raw_json_texts, st.none() | st.binary())
    def payloads_seen_by_jobs(value: Any, raw_json: str, raw_bytes: bytes | None) -> None:
        check_running_payload(db, value, raw_json, raw_bytes)

    failures: list[str] = []
    for check in (durations_round_trip, texts_round_trip, numbers_round_trip, payloads_round_trip):
        try:
            check()
        except Exception as exc:  # run every property, then report all that failed
            failures.append(f"{check.__name__}: {exc!r}"[:2000])
    with runner_thread(dsn, JobRegistry([echo])):
        payloads_seen_by_jobs()
    assert failures == []


# --- refused values: a typed error that names the option ---


@pytest.mark.parametrize(
    "text",
    [
        "1" * 5000,  # valid JSON (PostgreSQL accepts it), more digits than Python converts
        '{"n": ' + "9" * 4301 + "}",
    ],
)
def test_raw_json_with_a_huge_number_is_stored_or_refused_with_payload_error(
    db: psycopg.Connection[Any], text: str
) -> None:
    builder = echo.builder()
    if accepted("JSON", lambda: builder.set_raw_json(text)):
        assert spawned_row(db, builder)["payload_json"] == text


async def test_checkpoint_extra_retries_that_overflow_are_refused_or_saturate(
    dsn: str, db: psycopg.Connection[Any]
) -> None:
    outcome: list[str] = []

    @job(retries=3)
    async def greedy(current_job: CurrentJob) -> None:
        checkpoint = Checkpoint()
        if not accepted("extra_retries", lambda: checkpoint.set_extra_retries(2**31 - 1)):
            outcome.append("refused at build time")
            return
        try:
            await current_job.checkpoint(checkpoint)
        except psycopg.Error as exc:
            outcome.append(f"database error: {type(exc).__name__}: {exc}")
            raise
        async with current_job.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT max_attempts FROM mq_jobs WHERE id = %s", (current_job.id,)
            )
            outcome.append(f"applied, max_attempts {(await cur.fetchone() or [None])[0]}")

    greedy.builder().spawn(db)
    async with running(dsn, [greedy]):
        await wait_until(lambda: bool(outcome))
    assert outcome in (["refused at build time"], [f"applied, max_attempts {2**31 - 1}"])


# --- rows written by SQL ---


async def test_undecodable_payloads_written_by_sql_fail_with_payload_error(
    dsn: str, db: psycopg.Connection[Any]
) -> None:
    @job(retries=0)
    async def decodes(current_job: CurrentJob) -> None:
        current_job.json()

    payloads = ["[" + "1" * 5000 + "]", '{"n": -' + "7" * 4400 + "}"]
    ids = [
        db.execute(  # type: ignore[index]
            "SELECT mq_spawn(%s, %s::json, retries => 0)", (decodes.name, p)
        ).fetchone()[0]
        for p in payloads
    ]
    async with running(dsn, [decodes]):
        await wait_until(lambda: count_jobs(db, "state = 'f'") == len(ids))
    for job_id in ids:
        row = job_row(db, job_id)
        assert row is not None
        assert row["last_error"].startswith(f"PayloadError: payload of job {decodes.name!r}")


async def test_a_job_row_without_its_payload_row_fails_visibly(
    dsn: str, db: psycopg.Connection[Any]
) -> None:
    ran: list[str] = []

    @job(retries=1, lease=0.3)
    async def orphan(current_job: CurrentJob) -> None:
        ran.append("orphan")

    @job
    async def marker(current_job: CurrentJob) -> None:
        ran.append("marker")

    job_id = orphan.builder().spawn(db)
    db.execute("DELETE FROM mq_payloads WHERE id = %s", (job_id,))  # broken by hand
    with structlog.testing.capture_logs() as logs:
        async with running(dsn, [orphan, marker]):
            await wait_until(lambda: count_jobs(db, "state = 'f'") == 1, timeout=15)
            marker_id = marker.builder().spawn(db)
            await wait_until(lambda: not exists(db, marker_id))
    assert ran == ["marker"]  # the runner goes on
    # not dropped, and not failed in silence: the runner says which job it could not run
    assert [e["event"] for e in logs if e.get("job_id") == str(job_id)]


@pytest.mark.parametrize("source", ["builder", "sql"])
async def test_an_absurd_lease_does_not_stop_the_runner(
    dsn: str, db: psycopg.Connection[Any], source: str
) -> None:
    ran: list[Any] = []

    @job
    async def work(current_job: CurrentJob) -> None:
        ran.append(current_job.json())

    huge = timedelta(days=999_999_999)  # the longest timedelta there is
    refused: Exception | None = None
    try:
        if source == "builder":
            work.builder().set_lease(huge).set_json("absurd").spawn(db)
        else:
            db.execute("SELECT mq_spawn('work', '\"absurd\"', lease => %s)", (huge,))
    except (ConfigurationError, psycopg.errors.CheckViolation) as exc:
        refused = exc  # refused when set, or by the schema: fine
    if isinstance(refused, ConfigurationError):
        assert "lease" in str(refused)
    normal = spawn_many(db, [work.builder().set_json(i) for i in range(5)])
    async with running(dsn, [work]):
        await wait_until(lambda: not any(exists(db, i) for i in normal), timeout=10)
    assert sorted(x for x in ran if x != "absurd") == list(range(5))


# --- 10 MB payloads ---


async def test_ten_megabyte_payloads_are_spawned_and_run(
    dsn: str, conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    digests: dict[Any, tuple[str | None, str | None]] = {}

    def digest(data: str | bytes | None) -> str | None:
        if data is None:
            return None
        return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()

    @job
    async def big(current_job: CurrentJob) -> None:
        current_job.json()  # decodes
        digests[current_job.id] = (digest(current_job.raw_json()), digest(current_job.raw_bytes()))

    @job(retries=0)
    async def loud(current_job: CurrentJob) -> None:
        raise RuntimeError("é" * 5_000_000)  # a 10 MB error message

    text = json.dumps({"blob": "é" * 5_000_000}, ensure_ascii=False, separators=(",", ":"))
    blob = os.urandom(10 * 2**20)
    expected = {
        big.builder().set_raw_json(text).spawn(conn): (digest(text), None),
        big.builder().set_raw_bytes(blob).spawn(conn): (None, digest(blob)),
        big.builder().set_raw_json(text).set_raw_bytes(blob).spawn(conn): (
            digest(text),
            digest(blob),
        ),
    }
    loud_id = loud.builder().spawn(conn)
    conn.commit()
    async with running(dsn, [big, loud]):
        await wait_until(lambda: count_jobs(db) == 1, timeout=60)
        await wait_until(lambda: (job_row(db, loud_id) or {}).get("state") == "f")
    assert digests == expected
    row = job_row(db, loud_id)
    assert row is not None
    assert row["last_error"].startswith("RuntimeError: éééé")
    assert len(row["last_error"]) <= 16_000  # recorded, truncated


# --- names made of quotes, NULs, SQL fragments and non-ASCII ---

NASTY = [
    "'",
    "''",
    '"',
    "\\",
    "'; DROP TABLE mq_jobs; --",
    '"); DELETE FROM mq_payloads; --',
    "%s",
    "%(ids)s",
    "{}",
    "$1",
    "$$",
    "E'\\x41'",
    "日本語のチャンネル",
    "🚀",
    "\u202eevil",
    " ",
    "\t\n\r",
    "NULL",
    "mq",
    "LISTEN mq",
    "x" * 1_000,  # the longest name an index key may hold (see tests/adversarial/test_limits.py)
    "é" * 500,
]
WITH_NUL = ["\x00", "a\x00b", "\x00; DROP TABLE mq_jobs"]
WITH_SURROGATE = ["\ud800", "a\udfffb"]


@pytest.mark.parametrize("bad", WITH_NUL + WITH_SURROGATE)
def test_names_postgresql_cannot_store_are_refused_naming_the_option(
    db: psycopg.Connection[Any], bad: str
) -> None:
    registry = JobRegistry([echo])
    for option, call in [
        ("name", lambda: job(name=bad)(echo.fn)),
        ("name", lambda: JobBuilder(bad)),
        ("channel_name", lambda: job(channel_name=bad)(echo.fn)),
        ("channel_name", lambda: echo.builder().set_channel_name(bad)),
        ("channel_args", lambda: echo.builder().set_channel_args(bad)),
        ("channel_names", lambda: registry.runner(db.info.dsn).set_channel_names([bad])),
        ("channel_names", lambda: clear(db, [bad])),
    ]:
        with pytest.raises(ConfigurationError) as caught:
            call()
        assert option in str(caught.value)
    assert count_jobs(db) == 0


async def test_nasty_names_channels_and_args_run_or_fail_as_recorded(
    dsn: str, db: psycopg.Connection[Any]
) -> None:
    ran: list[tuple[str, str, str]] = []

    def make(name: str) -> Any:
        async def fn(current_job: CurrentJob) -> None:
            ran.append((current_job.name, current_job.channel_name, current_job.channel_args))

        return job(name=name)(fn)

    jobs = [make(name) for name in NASTY]
    spawned = spawn_many(
        db,
        [
            named.builder().set_channel_name(NASTY[-1 - i]).set_channel_args(NASTY[i])
            for i, named in enumerate(jobs)
        ],
    )
    unknown = [
        db.execute(
            "SELECT mq_spawn(%s, channel_name => %s, channel_args => %s, retries => 0)",
            ("unknown " + name, name, name),
        ).fetchone()[0]  # type: ignore[index]
        for name in NASTY
    ]
    registry = JobRegistry(jobs)
    # one runner subscribed to every nasty channel by name, one to all channels
    async with running(dsn, registry, channel_names=NASTY), running(dsn, registry):
        await wait_until(lambda: not any(exists(db, i) for i in spawned), timeout=20)
        await wait_until(lambda: count_jobs(db, "state = 'n'") == len(unknown), timeout=20)
        late = jobs[0].builder().set_channel_name(NASTY[5]).spawn(db)
        await wait_until(lambda: not exists(db, late))  # the runners still run jobs
    assert sorted(ran[: len(NASTY)]) == sorted(
        (name, NASTY[-1 - i], NASTY[i]) for i, name in enumerate(NASTY)
    )
    for name, job_id in zip(NASTY, unknown, strict=True):
        row = job_row(db, job_id)
        assert row is not None
        assert (row["state"], row["attempts"]) == ("n", 0)  # parked, no attempt spent
        expected = f"waiting for a runner that knows the job name {'unknown ' + name!r}"
        assert row["last_error"].startswith(expected)
