"""Issue 9.25: every kind of bad object a job can produce, thrown at ONE long-lived worker.

A ``sqlxmq worker`` process runs this module's ``registry`` for the whole module (on a database
of the module's own). Each case of ``CASES`` spawns one job that raises or returns a bad object,
waits until the job is settled with its reason (failed with ``last_error`` naming the cause, or
completed for returned values) and then checks that the worker still serves a normal job. A
case that fails replaces the worker, so that one defect does not fail every later case.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, NoReturn

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from sqlxmq_py import BlockingCurrentJob, CurrentJob, JobRegistry, job

from ..conftest import _create_db, _drop_db
from ..helpers import wait_until
from ..processes import Child, Processes, started_processes
from .conftest import state, status

CHANNEL = "bad-objects"

# --- the bad objects ---


class UnprintableError(Exception):
    """``str()`` reads an attribute that ``__init__`` never set."""

    def __str__(self) -> str:
        return self.detail  # type: ignore[attr-defined,no-any-return]


class UnprintableEverywhereError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("__str__ is broken")

    def __repr__(self) -> str:
        raise RuntimeError("__repr__ is broken")


class NonStrError(Exception):
    def __str__(self) -> str:
        return 42  # type: ignore[return-value]


class _NamelessMeta(type):
    def __getattribute__(cls, name: str) -> Any:
        if name in ("__name__", "__qualname__"):
            raise RuntimeError(f"this class has no {name}")
        return super().__getattribute__(name)


class NamelessError(Exception, metaclass=_NamelessMeta):
    """Its class's ``__name__`` and ``__qualname__`` raise."""


class CycleError(Exception):
    pass


class ChainedError(Exception):
    pass


class CustomBaseError(BaseException):
    pass


class BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("__repr__ is broken")

    __str__ = __repr__


def raise_(exc: BaseException) -> Callable[[], NoReturn]:
    def act() -> NoReturn:
        raise exc

    return act


def cycle() -> NoReturn:
    first, second = CycleError("first"), CycleError("second")
    first.__cause__ = second
    second.__context__ = first
    raise first


def chain() -> NoReturn:
    exc = ChainedError(0)
    for n in range(1, 10_000):
        newer = ChainedError(n)
        newer.__cause__ = exc
        exc = newer
    raise exc


def self_referencing_list() -> list[Any]:
    items: list[Any] = []
    items.append(items)
    return items


NUL_AND_SURROGATE = "a\x00b\ud800c\udfffd"
_NOT_CHECKED = object()


@dataclass(frozen=True)
class Case:
    """One bad object: ``act()`` raises or returns it. A failed job's ``last_error`` must hold
    each of ``error_has`` and no NUL; a completed job's result must equal ``result`` (unless not
    checked: objects JSON cannot hold may be stored as null or not at all)."""

    name: str
    kind: Literal["async", "thread"]
    act: Callable[[], Any] = field(repr=False)
    outcome: Literal["failed", "completed"]
    error_has: tuple[str, ...] = ()
    result: Any = field(default=_NOT_CHECKED, repr=False)

    @property
    def id(self) -> str:
        return f"{self.name}-{self.kind}"


def both(name: str, act: Callable[[], Any], outcome: Any, **expect: Any) -> list[Case]:
    return [Case(name, kind, act, outcome, **expect) for kind in ("async", "thread")]


def asynchronous(name: str, act: Callable[[], Any], outcome: Any, **expect: Any) -> list[Case]:
    return [Case(name, "async", act, outcome, **expect)]


CASES: list[Case] = [
    *both("str_raises", raise_(UnprintableError()), "failed", error_has=("UnprintableError",)),
    *asynchronous(
        "str_and_repr_raise",
        raise_(UnprintableEverywhereError()),
        "failed",
        error_has=("UnprintableEverywhereError",),
    ),
    *asynchronous(
        "str_returns_non_str", raise_(NonStrError()), "failed", error_has=("NonStrError",)
    ),
    *asynchronous("class_name_raises", raise_(NamelessError("nameless")), "failed"),
    *asynchronous("cause_context_cycle", cycle, "failed", error_has=("CycleError",)),
    *asynchronous("chain_of_10000", chain, "failed", error_has=("ChainedError",)),
    *asynchronous(
        "message_of_10_mb",
        raise_(ValueError("x" * 10_000_000)),
        "failed",
        error_has=("ValueError",),
    ),
    *both(
        "base_exception_subclass",
        raise_(CustomBaseError("not an Exception")),
        "failed",
        error_has=("CustomBaseError",),
    ),
    *both("generator_exit", raise_(GeneratorExit("bye")), "failed", error_has=("GeneratorExit",)),
    *both("system_exit", raise_(SystemExit("bye")), "failed", error_has=("SystemExit",)),
    *both("sys_exit", lambda: sys.exit(3), "failed", error_has=("SystemExit",)),
    *both(
        "keyboard_interrupt",
        raise_(KeyboardInterrupt("Ctrl-C")),
        "failed",
        error_has=("KeyboardInterrupt",),
    ),
    *both(
        "cancelled_error",
        raise_(asyncio.CancelledError("by the job itself")),
        "failed",
        error_has=("CancelledError",),
    ),
    *both(
        "nul_in_message",
        raise_(ValueError("before\x00after")),
        "failed",
        error_has=("ValueError", "before", "after"),
    ),
    *both(
        "lone_surrogate_in_message",
        raise_(ValueError("before\ud800after")),
        "failed",
        error_has=("ValueError", "before", "after"),
    ),
    *both("returns_unserialisable", object, "completed"),
    *asynchronous("returns_object_whose_repr_raises", BadRepr, "completed"),
    *asynchronous("returns_self_referencing_list", self_referencing_list, "completed"),
    *asynchronous("returns_nan", lambda: float("nan"), "completed"),
    *asynchronous("returns_huge_int", lambda: 10**5000, "completed"),
    *both(
        "returns_str_with_nul_and_lone_surrogates",
        lambda: NUL_AND_SURROGATE,
        "completed",
        result=NUL_AND_SURROGATE,
    ),
]
"""The cases: the README quotes their number."""

_BY_ID = {case.id: case for case in CASES}


@job(channel_name=CHANNEL, retries=0, retain_for=3600)
async def bad_async(current_job: CurrentJob) -> Any:
    return _BY_ID[current_job.json()].act()


@job(channel_name=CHANNEL, retries=0, retain_for=3600)
def bad_thread(current_job: BlockingCurrentJob) -> Any:
    return _BY_ID[current_job.json()].act()


@job(channel_name=CHANNEL, retain_for=3600)
async def normal(current_job: CurrentJob) -> str:
    return "served"


registry = JobRegistry([bad_async, bad_thread, normal])


# --- one worker for the module ---


@pytest.fixture(scope="module")
def suite_dsn(server_dsn: str, template_db: str, app_role: str | None) -> Iterator[str]:
    """A database of this module's own (the worker outlives each test's database)."""
    name = _create_db(server_dsn, template_db)
    try:
        owner = make_conninfo(server_dsn, dbname=name)
        if app_role is None:
            yield owner
            return
        with psycopg.connect(owner, autocommit=True) as conn:
            conn.execute("SELECT mq_grant_usage(%s)", (app_role,))
            conn.execute(
                sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(sql.Identifier(app_role))
            )
        yield make_conninfo(owner, user=app_role)
    finally:
        _drop_db(server_dsn, name)


class LongLivedWorker:
    """The module's ``sqlxmq worker tests.adversarial.test_bad_objects:registry``; started on
    first use, and again after a case that failed (which may have broken it)."""

    def __init__(self, dsn: str, processes: Processes) -> None:
        self.dsn = dsn
        self.processes = processes
        self.process: Child | None = None
        self.started = 0

    def ensure(self) -> Child:
        if self.process is None or self.process.poll() is not None:
            self.discard()
            self.process = self.processes.worker(
                self.dsn,
                "tests.adversarial.test_bad_objects:registry",
                "--concurrency",
                "4",
                "8",
                "--log-level",
                "warning",
            )
            self.started += 1
        return self.process

    def discard(self) -> None:
        if self.process is not None:
            self.process.close()
            self.process = None


@pytest.fixture(scope="module")
def worker(suite_dsn: str) -> Iterator[LongLivedWorker]:
    with started_processes() as processes:
        long_lived = LongLivedWorker(suite_dsn, processes)
        yield long_lived
        process = long_lived.process
        if process is not None and process.poll() is None:
            process.signal(signal.SIGTERM)  # a clean stop first; close() kills what is left
            process.wait()


async def settled(
    db: psycopg.Connection[Any], job_id: Any, process: Child, wanted: set[str]
) -> str:
    """Waits until the job is in one of ``wanted`` states; fails at once if the worker died."""

    def check() -> bool:
        assert process.poll() is None, (
            f"the worker exited with code {process.poll()}; its last log lines:\n"
            + "".join(line[:500] for line in process.stderr().splitlines(True)[-10:])
        )
        return state(db, job_id) in wanted

    await wait_until(check, timeout=15)
    return state(db, job_id)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
async def test_a_bad_object_is_settled_with_its_reason_and_the_worker_goes_on(
    suite_dsn: str, worker: LongLivedWorker, case: Case
) -> None:
    """issue 9.25: the job producing the bad object is settled with its reason (failed with
    last_error naming the cause, or completed for returned values), and then the same
    long-lived worker still serves a normal job."""
    process = worker.ensure()
    try:
        with psycopg.connect(suite_dsn, autocommit=True) as db:
            bad = bad_async if case.kind == "async" else bad_thread
            job_id = bad.builder().set_json(case.id).spawn(db)
            final = {"failed", "completed", "cancelled"}
            found_state = await settled(db, job_id, process, final)
            found = status(db, job_id)
            assert found is not None
            assert found_state == case.outcome, (found_state, (found.last_error or "")[:500])
            if case.outcome == "failed":
                error = found.last_error or ""
                assert error, "no error recorded"
                assert not error.startswith("lease expired"), error[:300]
                assert "\x00" not in error
                for part in case.error_has:
                    assert part in error, (part, error[:500])
            elif case.result is not _NOT_CHECKED:
                assert found.result == case.result
            normal_id = normal.builder().spawn(db)
            assert await settled(db, normal_id, process, final) == "completed"
    except BaseException:
        worker.discard()  # the next case gets a fresh worker
        raise
