"""Rows 6 and 8-8p: draining pre-spawned no-op jobs with worker processes, at the best of
several settings (the default-settings rows 3 and 4 are in benchmarks/drain_default.py).

Each measurement gets a fresh database, filled in bulk (not timed), vacuumed, analysed and
checkpointed. The worker processes are started and imported first; the clock starts when they
are told to go (they connect and start their queue worker then) and stops when the benchmark,
polling every 10 ms on its own connection, sees no unfinished job left. A thread samples the
workers' resident set size every 50 ms throughout.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from ._report import AtLeast, AtLeastRatio, AtMost, Row
from ._support import (
    WORKER_LOOP,
    RssSampler,
    Settings,
    fresh_database,
    interleaved,
    median,
    process_cpu,
    server_cpu,
    settle,
    wait_until_done,
    worker_processes,
)
from .systems import load

__all__ = ["DrainResult", "DrainRuns", "measure_drain", "run"]

SQLXMQ_CONCURRENCY = [(100, 200), (500, 1000), (1000, 2000)]
"""The ``set_concurrency(min, max)`` settings tried for one runner; the best is reported."""

BASELINE_OPTIONS: dict[str, Any] = {"concurrency": (100, 200), "loop": WORKER_LOOP}
"""The floor loop, at sqlxmq_py's first setting."""
PGQUEUER_OPTIONS = [
    {"batch_size": 10, "loop": WORKER_LOOP},
    {"batch_size": 100, "loop": WORKER_LOOP},
]
PROCRASTINATE_OPTIONS = [{"concurrency": 10, "pool_size": 4, "loop": WORKER_LOOP}]

MB = 1024 * 1024


@dataclass(frozen=True)
class DrainResult:
    """One drain: its rate, how long it took, the workers' memory, and the CPU time the
    workers and their PostgreSQL backends used (None when the server is out of sight)."""

    jobs: int
    seconds: float
    peak_rss_mb: float
    idle_rss_mb: float
    worker_cpu_s: float
    server_cpu_s: float | None

    @property
    def rate(self) -> float:
        """Jobs per second."""
        return self.jobs / self.seconds

    def cpu_per_job(self) -> str:
        """Where the CPU went, in microseconds per job."""
        text = f"worker {self.worker_cpu_s / self.jobs * 1e6:.0f} us/job"
        if self.server_cpu_s is not None:
            text += f", PostgreSQL {self.server_cpu_s / self.jobs * 1e6:.0f} us/job"
        return text


def measure_drain(
    settings: Settings, system: str, options: dict[str, Any], jobs: int, processes: int = 1
) -> DrainResult:
    """Fills a fresh database with ``jobs`` no-op jobs and times ``processes`` workers
    draining it."""
    queue = load(system)
    with fresh_database(settings.server_dsn, f"drain_{system}") as dsn:
        queue.prepare(dsn)
        queue.fill(dsn, jobs)
        settle(dsn)
        with worker_processes(system, dsn, processes, options) as workers:
            with RssSampler([w.pid for w in workers]) as rss:
                idle = max(rss.peaks)
                cpu_before = sum(process_cpu(w.pid) for w in workers)
                started = time.perf_counter()
                for worker in workers:
                    worker.go()
                finished = wait_until_done(
                    dsn, queue.pending_sql, timeout=60 + jobs / 100, workers=workers
                )
                worker_cpu = sum(process_cpu(w.pid) for w in workers) - cpu_before
                backends_cpu = server_cpu(dsn)
            for worker in workers:
                worker.stop()
    result = DrainResult(
        jobs=jobs,
        seconds=finished - started,
        peak_rss_mb=max(rss.peaks) / MB,
        idle_rss_mb=idle / MB,
        worker_cpu_s=worker_cpu,
        server_cpu_s=backends_cpu,
    )
    settings.debug(
        f"{system} x{processes} {options}: {result.rate:,.0f} jobs/s, "
        f"peak RSS {result.peak_rss_mb:.1f} MB, {result.cpu_per_job()}"
    )
    return result


def _label(options: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in options.items() if k != "loop")


@dataclass(frozen=True)
class DrainRuns:
    """Repeated drains of one system with one option set."""

    options: dict[str, Any]
    results: list[DrainResult]

    @property
    def rate(self) -> float:
        """The median rate."""
        return median([r.rate for r in self.results])

    def typical(self) -> DrainResult:
        """The run whose rate is the median (the lower middle one for an even count)."""
        ordered = sorted(self.results, key=lambda r: r.rate)
        return ordered[(len(ordered) - 1) // 2]

    def as_json(self) -> dict[str, Any]:
        """The options, the median rate and every run, for ``--json``."""
        return {
            "options": self.options,
            "median_rate": self.rate,
            "runs": [{**vars(r), "rate": r.rate} for r in self.results],
        }


def _drains(
    settings: Settings,
    jobs: int,
    candidates: dict[str, tuple[str, dict[str, Any]]],
    processes: int = 1,
) -> dict[str, DrainRuns]:
    """Measures every ``label: (system, options)`` candidate, interleaved and repeated."""
    results = interleaved(
        settings,
        list(candidates),
        lambda label: measure_drain(settings, *candidates[label], jobs, processes),
    )
    return {label: DrainRuns(candidates[label][1], runs) for label, runs in results.items()}


@dataclass
class _Drains:
    """What the drain rows share: the best runner setting found by row 8."""

    settings: Settings
    best_sqlxmq: dict[str, Any]
    best_sqlxmq_rate: float | None = None


def _cpu_note(sqlxmq: DrainResult, baseline: DrainResult) -> str:
    return f"CPU: sqlxmq_py {sqlxmq.cpu_per_job()}; floor loop {baseline.cpu_per_job()}"


def _one_process(state: _Drains) -> Row:
    settings = state.settings
    jobs = settings.pick(20_000, 10_000)
    settings.log(f"drain {jobs:,} jobs, 1 worker process")
    concurrency = SQLXMQ_CONCURRENCY[:1] if settings.quick else SQLXMQ_CONCURRENCY
    candidates = {
        f"sqlxmq {c}": ("sqlxmq", {"concurrency": c, "loop": WORKER_LOOP}) for c in concurrency
    }
    candidates["baseline"] = ("floor", BASELINE_OPTIONS)
    runs = _drains(settings, jobs, candidates)
    baseline = runs.pop("baseline")
    best = max(runs.values(), key=lambda r: r.rate)
    state.best_sqlxmq = best.options
    state.best_sqlxmq_rate = best.rate
    low, high = best.options["concurrency"]
    tried = ", ".join(f"{tuple(r.options['concurrency'])}: {r.rate:,.0f}" for r in runs.values())
    return Row(
        number="8",
        scenario=f"best of: drain {jobs:,} no-op jobs, 1 runner process",
        unit="jobs/s",
        sqlxmq=best.rate,
        baseline=baseline.rate,
        target=AtLeast(20_000),
        notes=[
            f"set_concurrency(min, max) tried: {tried} jobs/s; reported: ({low}, {high}). The "
            "baseline is the floor loop at (100, 200). "
            + _cpu_note(best.typical(), baseline.typical())
        ],
        details={label: r.as_json() for label, r in {**runs, "baseline": baseline}.items()},
    )


def _two_processes(state: _Drains) -> Row:
    settings = state.settings
    jobs = settings.pick(20_000, 10_000)
    settings.log(f"drain {jobs:,} jobs, 2 worker processes")
    runs = _drains(
        settings,
        jobs,
        {"sqlxmq": ("sqlxmq", state.best_sqlxmq), "baseline": ("floor", BASELINE_OPTIONS)},
        processes=2,
    )
    low, high = state.best_sqlxmq["concurrency"]
    return Row(
        number="8b",
        scenario=f"best of: drain {jobs:,} no-op jobs, 2 runner processes",
        unit="jobs/s",
        sqlxmq=runs["sqlxmq"].rate,
        baseline=runs["baseline"].rate,
        target=AtLeast(30_000),
        notes=[
            f"each runner set_concurrency({low}, {high}). "
            + _cpu_note(runs["sqlxmq"].typical(), runs["baseline"].typical())
        ],
        details={label: r.as_json() for label, r in runs.items()},
    )


def _memory(state: _Drains) -> Row:
    settings = state.settings
    jobs = settings.pick(100_000, 30_000)
    settings.log(f"runner memory while draining {jobs:,} jobs")
    sqlxmq = measure_drain(settings, "sqlxmq", state.best_sqlxmq, jobs)
    baseline = measure_drain(settings, "floor", BASELINE_OPTIONS, jobs)
    low, high = state.best_sqlxmq["concurrency"]
    return Row(
        number="6",
        scenario=f"peak RSS of the runner process draining {jobs:,} jobs",
        unit="MB",
        sqlxmq=sqlxmq.peak_rss_mb,
        baseline=baseline.peak_rss_mb,
        target=AtMost(80),
        notes=[
            f"sampled every 50 ms with psutil; set_concurrency({low}, {high}); before it "
            f"started, the process held {sqlxmq.idle_rss_mb:.1f} MB (floor loop "
            f"{baseline.idle_rss_mb:.1f} MB); it drained at {sqlxmq.rate:,.0f} jobs/s "
            f"(floor loop {baseline.rate:,.0f}). " + _cpu_note(sqlxmq, baseline)
        ],
        details={
            "sqlxmq": {**vars(sqlxmq), "rate": sqlxmq.rate},
            "baseline": {**vars(baseline), "rate": baseline.rate},
        },
    )


def _peers(state: _Drains) -> Row:
    from .systems.pgqueuer_system import default_driver

    settings = state.settings
    jobs = settings.pick(20_000, 10_000)
    # procrastinate leases and finishes one job per statement (a few hundred jobs/s here):
    # fewer jobs keep the run short, and its rate does not depend on the count
    procrastinate_jobs = settings.pick(2_000, 500)
    settings.log(f"peers drain {jobs:,} jobs (procrastinate {procrastinate_jobs:,}), 1 worker")
    pgqueuer = _drains(settings, jobs, {_label(o): ("pgqueuer", o) for o in PGQUEUER_OPTIONS})
    procrastinate = _drains(
        settings,
        procrastinate_jobs,
        {_label(o): ("procrastinate", o) for o in PROCRASTINATE_OPTIONS},
    )
    best_pgq = max(pgqueuer.values(), key=lambda r: r.rate)
    best_proc = max(procrastinate.values(), key=lambda r: r.rate)
    if state.best_sqlxmq_rate is None:
        sqlxmq = measure_drain(settings, "sqlxmq", state.best_sqlxmq, jobs)
        state.best_sqlxmq_rate = sqlxmq.rate
    return Row(
        number="8p",
        scenario="best of: peers' drain, 1 worker process (sqlxmq_py: row 8)",
        unit="jobs/s",
        sqlxmq=state.best_sqlxmq_rate,
        peers={"pgqueuer": best_pgq.rate, "procrastinate": best_proc.rate},
        notes=[
            f"pgqueuer: PgQueuer.run() on {default_driver()} and {WORKER_LOOP}, tried "
            + ", ".join(f"{label}: {r.rate:,.0f}" for label, r in pgqueuer.items())
            + f" jobs/s ({best_pgq.typical().cpu_per_job()}); procrastinate: "
            f'run_worker_async({_label(best_proc.options)}, delete_jobs="always"), '
            f"{procrastinate_jobs:,} jobs ({best_proc.typical().cpu_per_job()})"
        ],
        details={
            "pgqueuer": {label: r.as_json() for label, r in pgqueuer.items()},
            "procrastinate": {label: r.as_json() for label, r in procrastinate.items()},
        },
    )


LOGGING_MODES = ("unconfigured", "warning", "off")
"""Row 8L: how the runner's logging is set up (see benchmarks/worker.py)."""


def _logging(state: _Drains) -> Row:
    """What logging costs a runner at the seed's default setting: nothing configured (the
    library's events go to the standard module, whose root logger drops them), the standard
    module and structlog at WARNING, and logging disabled altogether."""
    settings = state.settings
    jobs = settings.pick(20_000, 10_000)
    settings.log(f"drain {jobs:,} jobs, 1 runner at set_concurrency(10, 20), by logging setup")
    candidates = {
        mode: ("sqlxmq", {"concurrency": (10, 20), "loop": WORKER_LOOP, "logging": mode})
        for mode in LOGGING_MODES
    }
    runs = _drains(settings, jobs, candidates)
    off = runs["off"].rate
    shares = ", ".join(
        f"{mode}: {r.rate:,.0f} jobs/s ({r.rate / off:.1%} of off)" for mode, r in runs.items()
    )
    return Row(
        number="8L",
        scenario=f"drain {jobs:,} no-op jobs, (10, 20), logging unconfigured vs off",
        unit="jobs/s",
        sqlxmq=runs["unconfigured"].rate,
        baseline=off,
        target=AtLeastRatio(0.95),
        notes=[
            f"baseline column: the same runner with logging.disable(); {shares}. Per-job "
            "events are DEBUG: a disabled level is checked, never formatted."
        ],
        details={mode: r.as_json() for mode, r in runs.items()},
    )


def run(settings: Settings, selected: set[str]) -> list[Row]:
    """The drain rows among ``selected`` (drain, logging, drain2, memory, peers)."""
    state = _Drains(settings, best_sqlxmq={"concurrency": SQLXMQ_CONCURRENCY[0]})
    rows = []
    if "drain" in selected:
        rows.append(_one_process(state))
    if "logging" in selected:
        rows.append(_logging(state))
    if "drain2" in selected:
        rows.append(_two_processes(state))
    if "memory" in selected:
        rows.append(_memory(state))
    if "peers" in selected:
        rows.append(_peers(state))
    return rows
