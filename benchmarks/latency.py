"""Row 5: spawn-to-start latency on an idle worker, at 100 jobs/s.

A worker process is started and left idle for a second. The benchmark process then spawns one
probe job per transaction every 10 ms (on a schedule, so a slow spawn does not shift the
next). For each probe it notes the wall-clock time at which the committing call returned; the
probe notes the wall-clock time at which it started, in the worker process (same machine, same
clock). Latency is the difference. The first probes warm up connections and statement caches
and are not counted.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from ._report import PEERS, AtMost, Row
from ._support import (
    WORKER_LOOP,
    BenchmarkError,
    Settings,
    fresh_database,
    percentile,
    settle,
    wait_until_done,
    worker_processes,
)
from .systems import load

__all__ = ["measure_latency", "run"]

INTERVAL = 0.010
WARMUP = 20
IDLE_BEFORE = 1.0

OPTIONS: dict[str, dict[str, Any]] = {
    "sqlxmq": {"loop": WORKER_LOOP},
    "floor": {"concurrency": (16, 32), "loop": WORKER_LOOP},
    "pgqueuer": {"loop": WORKER_LOOP},
    "procrastinate": {"concurrency": 10, "loop": WORKER_LOOP},
}
"""Worker settings: sqlxmq_py's and pgqueuer's defaults (sqlxmq_py: ``set_concurrency(16,
32)``; pgqueuer: ``batch_size=10``), the floor loop at sqlxmq_py's default limits,
procrastinate with the concurrency of its best-of drain row; every worker on the same loop."""


@dataclass(frozen=True)
class LatencyResult:
    """Spawn-to-start latencies of the counted probes, in milliseconds."""

    latencies_ms: list[float]
    call_latencies_ms: list[float]
    missing: int

    @property
    def p50(self) -> float:
        """The median."""
        return percentile(self.latencies_ms, 0.50)

    @property
    def p99(self) -> float:
        """The 99th percentile."""
        return percentile(self.latencies_ms, 0.99)

    def summary(self) -> dict[str, Any]:
        """Figures for the JSON output."""
        return {
            "p50_ms": self.p50,
            "p90_ms": percentile(self.latencies_ms, 0.90),
            "p99_ms": self.p99,
            "max_ms": max(self.latencies_ms),
            "probes": len(self.latencies_ms),
            "missing": self.missing,
            "from_call_p50_ms": percentile(self.call_latencies_ms, 0.50),
            "from_call_p99_ms": percentile(self.call_latencies_ms, 0.99),
        }


def measure_latency(settings: Settings, system: str, probes: int) -> LatencyResult:
    """Spawns ``probes`` probes at 100 per second on an idle worker of ``system``."""
    queue = load(system)
    with fresh_database(settings.server_dsn, f"latency_{system}") as dsn:
        queue.prepare(dsn)
        settle(dsn)
        with worker_processes(system, dsn, 1, OPTIONS[system]) as (worker,):
            worker.go()
            worker.expect("started", 60)
            time.sleep(IDLE_BEFORE)
            called: dict[int, float] = {}
            returned: dict[int, float] = {}
            producer = queue.producer(dsn)
            try:
                total = WARMUP + probes
                first = time.perf_counter()
                for seq in range(total):
                    delay = first + seq * INTERVAL - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                    called[seq] = time.time()
                    producer.spawn(seq)
                    returned[seq] = time.time()
            finally:
                producer.close()
            wait_until_done(dsn, queue.pending_sql, timeout=60, workers=[worker])
            report = worker.stop()
    starts = {int(seq): at for seq, at in report["starts"].items()}
    counted = [seq for seq in range(WARMUP, total) if seq in starts]
    if not counted:
        raise BenchmarkError(f"{system}: no probe reported its start")
    result = LatencyResult(
        latencies_ms=[(starts[seq] - returned[seq]) * 1000 for seq in counted],
        call_latencies_ms=[(starts[seq] - called[seq]) * 1000 for seq in counted],
        missing=total - len(starts),
    )
    settings.debug(f"{system}: p50 {result.p50:.2f} ms, p99 {result.p99:.2f} ms")
    return result


def run(settings: Settings) -> list[Row]:
    """Rows 5 and 5b: p50 and p99 for sqlxmq_py, the baseline and the peers."""
    probes = settings.pick(1000, 200)
    settings.log(f"spawn-to-start latency, {probes:,} probes at 100/s, idle worker")
    results = {system: measure_latency(settings, system, probes) for system in OPTIONS}
    details = {system: result.summary() for system, result in results.items()}
    rows = []
    for number, name, limit in (("5", "p50", 1.5), ("5b", "p99", 4.0)):
        value = {system: getattr(result, name) for system, result in results.items()}
        rows.append(
            Row(
                number=number,
                scenario=f"spawn-to-start latency {name}, idle runner, 100 jobs/s",
                unit="ms",
                sqlxmq=value["sqlxmq"],
                baseline=value["floor"],
                peers={peer: value[peer] for peer in PEERS},
                target=AtMost(limit, peer="pgqueuer"),
                details=details if number == "5" else {},
            )
        )
    rows[0].notes.append(
        f"{probes:,} probes after {WARMUP} unmeasured, each spawned in its own transaction; "
        "from the return of the committing call to the job function's first line; every "
        "worker at its library's default settings; the baseline is the floor loop, which "
        "LISTENs and leases on each NOTIFY sent by its INSERT"
    )
    return rows
