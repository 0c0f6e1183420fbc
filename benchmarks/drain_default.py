"""Rows 3-4e: every system draining no-op jobs at the same in-flight limits, beside the floor.

Row 3 is the seed's default ``set_concurrency(10, 20)``, row 4 ``(100, 200)``; each has the
drain rate of sqlxmq_py, the floor loop (baseline column), pgqueuer and procrastinate, then the
worker's CPU per job (a), its PostgreSQL backends' CPU per job (b) and their sum (c). Every
worker runs in its own process on the same event loop (``WORKER_LOOP``) with every library's
logging at WARNING. The in-flight limit ``(min, max)`` maps to each peer's nearest setting:

- sqlxmq_py and the floor loop: ``(min, max)`` itself (lease when fewer than ``min`` are held,
  up to ``max``);
- pgqueuer: ``run(batch_size=min, max_concurrent_tasks=max)`` (jobs per dequeue and a hard cap
  on the jobs held; pgqueuer requires the cap to be at least twice the batch);
- procrastinate: ``run_worker_async(concurrency=max)`` (jobs run at once, each fetched by a
  statement of its own), with its connector's pool of 4.

Rows 4d and 4e (scenario ``drain-scale``) run two processes of sqlxmq_py and of the floor loop
at ``(100, 200)`` and divide by one process's rate (row 4's runs when row 4 ran in the same
invocation, else measured here).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ._report import AllOf, AtLeast, AtLeastPeer, AtLeastRatio, AtMostRatio, Row, Target
from ._support import WORKER_LOOP, Settings, interleaved
from .drain import DrainResult, DrainRuns, measure_drain

__all__ = ["SETTINGS", "peer_options", "run"]

SETTINGS = ((10, 20), (100, 200))
"""The in-flight limits of rows 3 and 4: the seed's default first."""

SYSTEMS = ("sqlxmq", "floor", "pgqueuer", "procrastinate")

Candidate = tuple[str, dict[str, Any], int, int]
"""A system, its worker options, the jobs to drain, the worker processes."""


def peer_options(low: int, high: int) -> dict[str, dict[str, Any]]:
    """Each system's worker options for the in-flight limit ``(low, high)``."""
    return {
        "sqlxmq": {"concurrency": [low, high], "loop": WORKER_LOOP},
        "floor": {"concurrency": [low, high], "loop": WORKER_LOOP},
        "pgqueuer": {"batch_size": low, "max_concurrent_tasks": high, "loop": WORKER_LOOP},
        "procrastinate": {"concurrency": high, "pool_size": 4, "loop": WORKER_LOOP},
    }


def _mapping(low: int, high: int) -> str:
    return (
        f"pgqueuer batch_size={low} max_concurrent_tasks={high}, procrastinate concurrency={high}"
    )


def _measure(settings: Settings, candidates: dict[str, Candidate]) -> dict[str, DrainRuns]:
    """Every candidate, interleaved and repeated."""
    results = interleaved(
        settings,
        list(candidates),
        lambda label: measure_drain(
            settings,
            candidates[label][0],
            candidates[label][1],
            candidates[label][2],
            candidates[label][3],
        ),
    )
    return {label: DrainRuns(candidates[label][1], runs) for label, runs in results.items()}


@dataclass
class _State:
    settings: Settings
    one_process: dict[str, DrainRuns] = field(default_factory=dict)
    """Row 4's runs of sqlxmq_py and the floor loop at (100, 200), for row 4e."""


def _cpu(result: DrainResult, part: str) -> float | None:
    """Microseconds per job: ``worker``, ``server`` or ``total``."""
    worker = result.worker_cpu_s
    server = result.server_cpu_s
    if part == "worker":
        seconds: float | None = worker
    elif part == "server":
        seconds = server
    else:
        seconds = None if server is None else worker + server
    return None if seconds is None else seconds / result.jobs * 1e6


def _setting_rows(state: _State, number: str, low: int, high: int) -> list[Row]:
    settings = state.settings
    jobs = settings.pick(20_000, 10_000)
    # procrastinate leases and finishes one job per statement (a few hundred jobs/s here):
    # fewer jobs keep the run short, and its rate does not depend on the count
    procrastinate_jobs = settings.pick(2_000, 500)
    settings.log(
        f"drain {jobs:,} jobs (procrastinate {procrastinate_jobs:,}), 1 process, "
        f"in flight ({low}, {high}): {', '.join(SYSTEMS)}"
    )
    options = peer_options(low, high)
    candidates: dict[str, Candidate] = {
        system: (
            system,
            options[system],
            procrastinate_jobs if system == "procrastinate" else jobs,
            1,
        )
        for system in SYSTEMS
    }
    runs = _measure(settings, candidates)
    if (low, high) == (100, 200):
        state.one_process = {name: runs[name] for name in ("sqlxmq", "floor")}
    typical = {system: runs[system].typical() for system in SYSTEMS}
    peers = ("pgqueuer", "procrastinate")
    rate_target: Target = (
        AtLeastRatio(0.75)
        if (low, high) == (10, 20)
        else AllOf((AtLeastRatio(0.6), AtLeastPeer("pgqueuer", 2.0)))
    )
    rows = [
        Row(
            number=number,
            scenario=f"drain {jobs:,} no-op jobs, 1 process, ({low}, {high}) in flight "
            f"[{_mapping(low, high)}]",
            unit="jobs/s",
            sqlxmq=runs["sqlxmq"].rate,
            baseline=runs["floor"].rate,
            peers={peer: runs[peer].rate for peer in peers},
            target=rate_target,
            notes=[
                f"set_concurrency({low}, {high}) for sqlxmq_py and the floor loop; pgqueuer "
                f"run(batch_size={low}, max_concurrent_tasks={high}); procrastinate "
                f"run_worker_async(concurrency={high}, delete_jobs='always'), pool of 4, "
                f"{procrastinate_jobs:,} jobs; every worker on {WORKER_LOOP}, logging at "
                "WARNING; median of the runs"
            ],
            details={system: runs[system].as_json() for system in SYSTEMS},
        )
    ]
    parts = (
        ("a", "worker", "worker CPU per job", None),
        ("b", "server", "PostgreSQL CPU per job", None),
        ("c", "total", "worker + PostgreSQL CPU per job", AtMostRatio(2.0)),
    )
    for suffix, part, what, target in parts:
        rows.append(
            Row(
                number=number + suffix,
                scenario=f"{what}, ({low}, {high}), row {number}'s median run",
                unit="us/job",
                sqlxmq=_cpu(typical["sqlxmq"], part),
                baseline=_cpu(typical["floor"], part),
                peers={peer: _cpu(typical[peer], part) for peer in peers},
                target=target,
            )
        )
    return rows


def _scale_rows(state: _State) -> list[Row]:
    settings = state.settings
    jobs = settings.pick(20_000, 10_000)
    low, high = SETTINGS[1]
    settings.log(f"drain {jobs:,} jobs, 2 processes at ({low}, {high}): sqlxmq, floor")
    options = peer_options(low, high)
    candidates: dict[str, Candidate] = {
        f"{system} x2": (system, options[system], jobs, 2) for system in ("sqlxmq", "floor")
    }
    reused = bool(state.one_process)
    if not reused:
        candidates.update(
            {system: (system, options[system], jobs, 1) for system in ("sqlxmq", "floor")}
        )
    runs = _measure(settings, candidates)
    one = state.one_process or {system: runs[system] for system in ("sqlxmq", "floor")}
    scale = {system: runs[f"{system} x2"].rate / one[system].rate for system in one}
    return [
        Row(
            number="4d",
            scenario=f"drain {jobs:,} no-op jobs, 2 processes, each ({low}, {high}) in flight",
            unit="jobs/s",
            sqlxmq=runs["sqlxmq x2"].rate,
            baseline=runs["floor x2"].rate,
            notes=[
                f"CPU, both processes: sqlxmq_py {runs['sqlxmq x2'].typical().cpu_per_job()}; "
                f"floor loop {runs['floor x2'].typical().cpu_per_job()}"
            ],
            details={label: r.as_json() for label, r in runs.items()},
        ),
        Row(
            number="4e",
            scenario="two processes' rate over one process's (row 4d / row 4)",
            unit="x",
            sqlxmq=scale["sqlxmq"],
            baseline=scale["floor"],
            target=AtLeast(1.4),
            notes=[
                "one process: "
                + ", ".join(f"{system} {r.rate:,.0f} jobs/s" for system, r in one.items())
                + (" (row 4's runs)" if reused else " (measured with row 4d)")
            ],
        ),
    ]


def run(settings: Settings, selected: set[str]) -> list[Row]:
    """The rows of ``drain-default`` (3-4c) and ``drain-scale`` (4d, 4e) among ``selected``."""
    state = _State(settings)
    rows: list[Row] = []
    if "drain-default" in selected:
        for number, (low, high) in zip(("3", "4"), SETTINGS, strict=True):
            rows.extend(_setting_rows(state, number, low, high))
    if "drain-scale" in selected:
        rows.extend(_scale_rows(state))
    return rows
