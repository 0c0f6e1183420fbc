"""The cost of running behind PgBouncer: ``python -m benchmarks.pooler [--jobs 20000]``.

Starts one PgBouncer (transaction mode, ``default_pool_size = 4``) in front of ``--dsn``'s
server, then measures, for four configurations of one in-process runner at the library's
default settings apart from ``set_concurrency(10, 20)``:

1. direct, default (prepared statements on, LISTEN on);
2. direct, ``set_prepared_statements(False)``;
3. through PgBouncer: the runner detects the pooler, prepares nothing, does not LISTEN and
   polls (50 ms after a poll that found work, doubling to 1 s while it finds none);
4. through PgBouncer, with ``set_listen_dsn(direct)``: LISTEN on a direct connection.

Drain: ``--jobs`` no-op jobs spawned with ``spawn_many`` into a fresh database (not timed), then
the clock runs from ``run()`` until a direct connection, polling every 10 ms, sees no row left
in ``mq_jobs``. Latency: on another fresh database, after the runner has idled for a second, a
producer thread (connected the runner's way: through PgBouncer with ``prepare_threshold=None``
for 3 and 4) spawns one probe per transaction every 20 ms, on a schedule; latency runs from the
return of ``commit()`` to the probe's first line (both ``time.perf_counter()``, one process);
"from call" from the spawn call instead (through PgBouncer ``commit()`` returns a hop later).
20 probes warm up and are not counted; 200 are. Each configuration runs ``--repeat`` times,
round by round in alternating order; the table shows each figure's median (not the best).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from sqlxmq_py import CurrentJob, JobRegistry, JobRunnerOptions, job, migrate, spawn_many

from ._support import (
    DEFAULT_SERVER_DSN,
    Settings,
    describe_machine,
    fresh_database,
    interleaved,
    machine_info,
    median,
    percentile,
    settle,
    wait_until_done,
)

__all__ = ["main"]

T = TypeVar("T")

INSTALL = "apt-get install pgbouncer"
POOL_SIZE = 4
CONCURRENCY = (10, 20)
FILL_BATCH = 10_000
PROBES, WARMUP, INTERVAL, IDLE_BEFORE = 200, 20, 0.020, 1.0
_NOISE = re.compile(r"^\S+ \S+ \S+ \[\d+\] |[SC]-0x[0-9a-f]+: \S+ ")
"""What varies between two of PgBouncer's log lines that say the same: time, pid, client."""
PENDING_SQL = "SELECT EXISTS (SELECT 1 FROM mq_jobs)"
INI = """\
[databases]
* = host={host} port={port}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {listen}
unix_socket_dir =
auth_type = trust
auth_file = {users}
pool_mode = transaction
default_pool_size = {size}
"""


@dataclass(frozen=True)
class Config:
    """One way of running the runner."""

    label: str
    pooled: bool = False
    prepared: bool | None = None
    listen_direct: bool = False


CONFIGS = (
    Config("1 direct, default"),
    Config("2 direct, no prepared statements", prepared=False),
    Config("3 pgbouncer (polls)", pooled=True),
    Config("4 pgbouncer + direct LISTEN", pooled=True, listen_direct=True),
)


@dataclass
class Starts:
    """Context value of the probe job: when each probe started, by sequence number."""

    at: dict[int, float] = field(default_factory=dict)


@job
async def noop(current_job: CurrentJob) -> None:
    """Does nothing: the queue's own cost is all that is measured."""


@job
async def probe(current_job: CurrentJob, starts: Starts) -> None:
    """A latency probe: notes when it started."""
    starts.at[int(current_job.json()["seq"])] = time.perf_counter()


class LogCounter(logging.Handler):
    """Counts WARNING and worse records: sqlxmq_py's by event name, others by logger and text
    (ERROR and worse marked)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.name.startswith("sqlxmq_py"):
            text = text.split(" ", 1)[0]
        else:
            text = f"{record.name}: {text[:80]}"
        self.counts[f"ERROR {text}" if record.levelno >= logging.ERROR else text] += 1


@contextlib.contextmanager
def pgbouncer(server_dsn: str, user: str) -> Iterator[tuple[tuple[str, int], str]]:
    """A PgBouncer in transaction mode in front of ``server_dsn``'s server, trusting ``user``,
    on 127.0.0.1 and a free port; yields ((host, port), its version) and terminates it."""
    binary = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin")
    if binary is None:
        raise RuntimeError(f"pgbouncer is not installed; install it with `{INSTALL}`")
    target = conninfo_to_dict(server_dsn)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    with tempfile.TemporaryDirectory(prefix="sqlxmq-bench-pgbouncer-") as tmp:
        directory = Path(tmp)
        directory.chmod(0o755)  # readable once it drops root
        users, ini, log = (directory / n for n in ("users.txt", "pgbouncer.ini", "pgbouncer.log"))
        users.write_text(f'"{user}" ""\n')
        host = target.get("host") or "/var/run/postgresql"
        params = {"listen": port, "users": users, "size": POOL_SIZE}
        ini.write_text(INI.format(host=host, port=target.get("port") or 5432, **params))
        as_user = ["-u", "nobody"] if os.geteuid() == 0 else []  # it refuses to run as root
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [binary, *as_user, str(ini)], stdin=subprocess.DEVNULL, stdout=out, stderr=out
            )
        try:
            deadline = time.monotonic() + 20
            while "process up" not in (text := log.read_text(errors="replace")):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"pgbouncer did not start; its log:\n{text}")
                time.sleep(0.02)
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
            yield ("127.0.0.1", port), text.split("process up: ", 1)[1].split(",", 1)[0]
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            # by message; the DROP DATABASE ... WITH (FORCE) after each measurement ends
            # PgBouncer's idle server sessions: "got packet 'E' from server when not linked"
            lines = log.read_text(errors="replace").splitlines()
            for text, n in Counter(_NOISE.sub("", x) for x in lines if " LOG " not in x).items():
                print(f"pgbouncer logged: {text} (x{n})", file=sys.stderr)


@contextlib.contextmanager
def _database(server_dsn: str, label: str, jobs: int = 0) -> Iterator[str]:
    """A fresh, migrated database holding ``jobs`` no-op jobs, settled; yields its DSN."""
    with fresh_database(server_dsn, label) as dsn:
        with psycopg.connect(dsn) as conn:
            migrate(conn)
            for start in range(0, jobs, FILL_BATCH):
                spawn_many(conn, [noop.builder() for _ in range(min(FILL_BATCH, jobs - start))])
            conn.commit()
        settle(dsn)
        yield dsn


def _running(options: JobRunnerOptions, work: Callable[[], T]) -> tuple[float, T]:
    """Runs ``work`` in a thread while the runner runs (on a new event loop); returns the
    ``perf_counter()`` at which ``run()`` was called and what ``work`` returned."""

    async def run() -> tuple[float, T]:
        began = time.perf_counter()
        handle = await options.run()
        try:
            return began, await asyncio.to_thread(work)
        finally:
            await handle.stop()

    return asyncio.run(run())


@dataclass(frozen=True)
class Bench:
    """What every measurement needs: the server, PgBouncer's address, the drain's size."""

    server_dsn: str
    user: str
    bouncer: tuple[str, int]
    jobs: int

    def dsn(self, config: Config, direct: str) -> str:
        """The DSN the runner (and the latency producer) uses in ``config``."""
        if not config.pooled:
            return direct
        name = str(conninfo_to_dict(direct)["dbname"])
        host, port = self.bouncer
        return make_conninfo(host=host, port=str(port), dbname=name, user=self.user)

    def runner(self, config: Config, direct: str, starts: Starts) -> JobRunnerOptions:
        """The runner's options in ``config``."""
        options = JobRegistry([noop, probe]).set_context(starts).runner(self.dsn(config, direct))
        options = options.set_concurrency(*CONCURRENCY)
        if config.prepared is not None:
            options = options.set_prepared_statements(config.prepared)
        return options.set_listen_dsn(direct) if config.listen_direct else options

    def drain(self, config: Config) -> float:
        """Jobs per second draining ``self.jobs`` pre-spawned no-op jobs."""
        with _database(self.server_dsn, "pooler_drain", self.jobs) as direct:
            timeout = max(120.0, self.jobs / 50)
            drained = partial(wait_until_done, direct, PENDING_SQL, timeout=timeout)
            began, done = _running(self.runner(config, direct, Starts()), drained)
        return self.jobs / (done - began)

    def latency(self, config: Config) -> dict[str, Any]:
        """Spawn-to-start latency of probes spawned one per transaction every 20 ms."""
        starts, called, committed = Starts(), dict[int, float](), dict[int, float]()
        with _database(self.server_dsn, "pooler_latency") as direct:
            prepare: dict[str, Any] = {"prepare_threshold": None} if config.pooled else {}

            def produce() -> None:
                time.sleep(IDLE_BEFORE)  # the runner goes idle
                with psycopg.connect(self.dsn(config, direct), **prepare) as conn:
                    tick = time.perf_counter()
                    for seq in range(WARMUP + PROBES):
                        tick += INTERVAL
                        time.sleep(max(0.0, tick - time.perf_counter()))
                        called[seq] = time.perf_counter()
                        probe.builder().set_json({"seq": seq}).spawn(conn)
                        conn.commit()
                        committed[seq] = time.perf_counter()
                deadline = time.monotonic() + 10
                while len(starts.at) < len(committed) and time.monotonic() < deadline:
                    time.sleep(0.01)

            _running(self.runner(config, direct, starts), produce)
        seen = [s for s in range(WARMUP, WARMUP + PROBES) if s in starts.at]
        ms = [(starts.at[s] - committed[s]) * 1000 for s in seen]
        from_call = [(starts.at[s] - called[s]) * 1000 for s in seen]
        return {
            "p50_ms": percentile(ms, 0.5) if ms else None,
            "p99_ms": percentile(ms, 0.99) if ms else None,
            "max_ms": max(ms, default=None),
            "p50_from_call_ms": percentile(from_call, 0.5) if ms else None,
            "missing": PROBES - len(ms),
        }


def _fmt(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _table(medians: dict[str, dict[str, Any]], warnings: dict[str, Counter[str]]) -> str:
    """The plain-text table, one configuration a line."""
    base = medians[CONFIGS[0].label]["drain_jobs_per_s"]
    lines = [
        f"{'configuration':<33}{'drain jobs/s':>13}{'vs 1':>6}{'p50 ms':>8}{'p99 ms':>8}"
        f"{'p50 from call':>15}{'missing':>8}  WARNING+ logged",
        "-" * 116,
    ]
    for label, m in medians.items():
        rate = m["drain_jobs_per_s"]
        ratio = f"{rate / base:.2f}" if rate and base else "-"
        logged = ", ".join(f"{k} x{n}" for k, n in sorted(warnings[label].items())) or "none"
        lines.append(
            f"{label:<33}{_fmt(rate, 0):>13}{ratio:>6}{_fmt(m['p50_ms'], 2):>8}"
            f"{_fmt(m['p99_ms'], 2):>8}{_fmt(m['p50_from_call_ms'], 2):>15}{m['missing']:>8}"
            f"  {logged}"
        )
    return "\n".join(lines)


def main() -> None:
    """Parses the command line, measures every configuration and prints the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=DEFAULT_SERVER_DSN, help="a server (needs CREATEDB)")
    parser.add_argument("--jobs", type=int, default=20_000, help="jobs drained per run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per configuration")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("sqlxmq_py").setLevel(logging.WARNING)
    counter = LogCounter()
    logging.getLogger().addHandler(counter)
    settings = Settings(server_dsn=args.dsn, quick=False, repeat=args.repeat, verbose=False)
    user = str(conninfo_to_dict(args.dsn).get("user") or getpass.getuser())
    info = machine_info(args.dsn)
    warnings: dict[str, Counter[str]] = {c.label: Counter() for c in CONFIGS}
    by_label = {c.label: c for c in CONFIGS}
    with pgbouncer(args.dsn, user) as (address, version):
        bench = Bench(args.dsn, user, address, args.jobs)

        def measure(label: str) -> dict[str, Any]:
            settings.log(f"{label}: drain {args.jobs:,} jobs, then {PROBES} latency probes")
            counter.counts.clear()
            run = {"drain_jobs_per_s": bench.drain(by_label[label])}
            run |= bench.latency(by_label[label])
            warnings[label].update(counter.counts)
            settings.log(
                f"  {run['drain_jobs_per_s']:,.0f} jobs/s, p50 {_fmt(run['p50_ms'], 2)} ms"
            )
            return run

        runs = interleaved(settings, list(by_label), measure)
    medians = {
        label: {
            key: median(values) if (values := [r[key] for r in rs if r[key] is not None]) else None
            for key in rs[0]
        }
        | {"missing": sum(r["missing"] for r in rs)}
        for label, rs in runs.items()
    }
    machine = describe_machine(info).splitlines()
    print("\n".join(line for line in machine if not line.startswith("loops:")))
    print("runner:     in this process, on asyncio; producer in a thread of it")
    print(f"pgbouncer:  {version}; transaction mode, default_pool_size {POOL_SIZE}")
    print(_table(medians, warnings))
    print(
        f"Each figure is the median of {args.repeat} interleaved run(s), not the best.\n"
        f"Drain: {args.jobs:,} jobs, set_concurrency{CONCURRENCY}. Latency: {PROBES} probes "
        f"every {INTERVAL * 1000:.0f} ms, from commit() returning (p50 from call: from the\n"
        "spawn call). missing: probes never started (all runs). WARNING+ logged: all runs."
    )
    if args.json:
        report = {"machine": info, "pgbouncer": version, "jobs": args.jobs, "repeat": args.repeat}
        report |= {"medians": medians, "runs": runs, "warnings": warnings}
        args.json.write_text(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
