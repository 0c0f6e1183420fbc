"""``sqlxmq status``, ``sqlxmq jobs``, ``sqlxmq show`` and ``sqlxmq workers``: looking at the
queue and its runners."""

from __future__ import annotations

import argparse
import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from ..admin import (
    Interruptions,
    JobStatus,
    WorkerInfo,
    attempt_errors,
    blocked_chains,
    channel_limits,
    job_status,
    list_jobs,
    list_workers,
    paused_channels,
    queue_counts,
    throughput,
)
from ..states import JobState
from ._common import (
    EXIT_ERROR,
    EXIT_OK,
    CliError,
    Commands,
    Context,
    add_command,
    err,
    parse_job_id,
    positive_int,
)
from ._output import (
    first_line,
    human_age,
    human_time,
    print_json,
    render_table,
    terminal_safe,
)

__all__ = ["register"]

STATES: tuple[JobState, ...] = tuple(JobState)
_STATE_ORDER = {state: i for i, state in enumerate(STATES)}
RECENT = timedelta(minutes=5)


def register(commands: Commands) -> None:
    """Adds the ``status``, ``jobs``, ``show`` and ``workers`` commands."""
    status = add_command(
        commands,
        "status",
        summary="jobs per channel and state, blocked chains, channel limits",
        description=(
            "Shows how many jobs each channel has in each state, the age of the oldest\n"
            "ready job (how far behind the runners are), the ordered chains blocked by a\n"
            "failed head, the channel concurrency limits, and the attempts finished in the\n"
            "last five minutes."
        ),
    )
    status.set_defaults(handler=run_status)

    jobs = add_command(
        commands,
        "jobs",
        summary="list jobs, newest first, with filters",
        description=(
            "Lists jobs, newest first: queued jobs and finished jobs kept in the history\n"
            "(retain_for). Filters combine. Page with --before: pass the last id shown."
        ),
        epilog="states: " + ", ".join(STATES),
    )
    jobs.add_argument(
        "--state",
        action="append",
        choices=STATES,
        metavar="STATE",
        help="only jobs in this state (repeatable; states are listed below)",
    )
    jobs.add_argument("--channel", metavar="NAME", help="only jobs of this channel")
    jobs.add_argument("--name", metavar="JOB", help="only jobs with this job name")
    jobs.add_argument("--key", metavar="KEY", help="only jobs with this job key")
    jobs.add_argument(
        "--limit",
        type=positive_int,
        default=50,
        metavar="N",
        help="show at most N jobs (default 50, at most 10000)",
    )
    jobs.add_argument(
        "--before",
        type=parse_job_id,
        metavar="ID",
        help="show the jobs older than this one (the next page)",
    )
    jobs.set_defaults(handler=run_jobs)

    show = add_command(
        commands,
        "show",
        summary="one job's full status, error and result",
        description=(
            "Shows everything the queue knows about one job: state, attempts, channel, key,\n"
            "times, the full text of its last error and its result (when kept)."
        ),
    )
    show.add_argument("job_id", type=parse_job_id, metavar="ID", help="the job's id")
    show.set_defaults(handler=run_show)

    workers = add_command(
        commands,
        "workers",
        summary="the live runners and the jobs each runs now",
        description=(
            "Lists the runners announced in the database: host, pid, runner id, version,\n"
            "channels, concurrency, when each started, its last heartbeat and how many jobs\n"
            "it runs now. A runner whose heartbeat is older than 30 s is marked stale (it\n"
            "stopped without saying so, or cannot reach the database); maintenance removes\n"
            "it after 5 minutes."
        ),
    )
    workers.set_defaults(handler=run_workers)


def run_status(ctx: Context, args: argparse.Namespace) -> int:
    """Prints the queue's state."""
    since = datetime.now(UTC) - RECENT
    with ctx.connect() as conn:
        counts = queue_counts(conn)
        chains = blocked_chains(conn)
        limits = channel_limits(conn)
        paused = paused_channels(conn)
        recent = throughput(conn, since)
    merged: dict[tuple[str, JobState], list[Any]] = {}
    for c in counts:  # "waiting" covers two row states: add them up
        entry = merged.setdefault((c.channel_name, c.state), [0, None])
        entry[0] += c.count
        if c.oldest_ready_age_s is not None:
            entry[1] = max(entry[1] or 0.0, c.oldest_ready_age_s)
    rows = sorted(merged.items(), key=lambda kv: (kv[0][0], _STATE_ORDER.get(kv[0][1], 99)))
    finished = {
        "completed": sum(b.completed for b in recent),
        "retried": sum(b.retried for b in recent),
        "failed": sum(b.failed for b in recent),
        "interrupted": sum(b.interrupted for b in recent),
    }
    if ctx.json:
        print_json(
            {
                "database": ctx.database(),
                "queues": [
                    {"channel": ch, "state": st, "count": n, "oldest_ready_age_s": age}
                    for (ch, st), (n, age) in rows
                ],
                "blocked_chains": chains,
                "channel_limits": limits,
                "paused_channels": paused,
                "last_5_minutes": finished,
            }
        )
        return EXIT_OK
    print(f"Database: {ctx.database()}")
    print()
    if rows:
        table = [
            (ch, st, n, human_age(age) if st == JobState.READY else "")
            for (ch, st), (n, age) in rows
        ]
        print(render_table(["channel", "state", "jobs", "oldest ready"], table, numeric=[2]))
        total = sum(n for _, (n, _) in rows)
        channels = len({ch for ch, _ in merged})
        print(f"({_plural(total, 'job')} in {_plural(channels, 'channel')})")
    else:
        print("The queue is empty.")
    print()
    if chains:
        print("Blocked ordered chains (retry or cancel the head to unblock):")
        print(
            render_table(
                ["channel", "args", "head id", "head job", "waiting", "error"],
                [
                    (
                        c.channel_name,
                        c.channel_args or "-",
                        c.head_id,
                        c.head_name,
                        c.waiting,
                        first_line(c.error, 50),
                    )
                    for c in chains
                ],
                numeric=[4],
            )
        )
    else:
        print("Blocked ordered chains: none")
    print()
    if limits:
        print("Channel limits (most jobs running at once, across all runners):")
        print(render_table(["channel", "max running"], sorted(limits.items()), numeric=[1]))
    else:
        print("Channel limits: none")
    print()
    if paused:
        print("Paused channels (runners start none of their jobs; `sqlxmq resume CHANNEL`):")
        print("\n".join(f"  {terminal_safe(name)}" for name in paused))
    else:
        print("Paused channels: none")
    print()
    print(
        "Last 5 minutes: {completed} completed, {retried} retried, {failed} failed, "
        "{interrupted} interrupted".format(**finished)
    )
    return EXIT_OK


def run_jobs(ctx: Context, args: argparse.Namespace) -> int:
    """Prints one page of jobs."""
    if args.limit > 10_000:
        raise CliError("--limit is at most 10000", 2)
    with ctx.connect() as conn:
        found = list_jobs(
            conn,
            states=args.state,
            channel_name=args.channel,
            name=args.name,
            job_key=args.key,
            limit=args.limit,
            before=args.before,
        )
    if ctx.json:
        print_json(found)
        return EXIT_OK
    if not found:
        print("No jobs match.")
        return EXIT_OK
    print(
        render_table(
            ["id", "name", "state", "channel", "attempts", "created", "error"],
            [
                (
                    j.id,
                    j.name,
                    j.state,
                    _channel(j),
                    f"{j.attempts}/{j.max_attempts}",
                    j.created_at,
                    first_line(j.last_error, 50),
                )
                for j in found
            ],
        )
    )
    if len(found) == args.limit:
        err(f"(more jobs may follow: add --before {found[-1].id})")
    return EXIT_OK


def _channel(j: JobStatus) -> str:
    return f"{j.channel_name} [{j.channel_args}]" if j.channel_args else j.channel_name


def run_show(ctx: Context, args: argparse.Namespace) -> int:
    """Prints one job."""
    with ctx.connect() as conn:
        status = job_status(conn, args.job_id)
        errors = attempt_errors(conn, args.job_id) if status is not None else []
    if status is None:
        raise CliError(
            f"no job {args.job_id}: it is not queued nor kept in the history (it may have "
            "completed without retain_for, or been purged)",
            EXIT_ERROR,
        )
    if ctx.json:
        print_json({**dataclasses.asdict(status), "attempt_errors": errors})
        return EXIT_OK
    run_label = "lease ends" if status.state == JobState.RUNNING else "run at"
    fields: list[tuple[str, object]] = [
        ("id", status.id),
        ("name", status.name),
        ("state", status.state),
        ("channel", status.channel_name),
        ("channel args", status.channel_args or "-"),
        ("attempts", f"{status.attempts} of {status.max_attempts}"),
        ("priority", status.priority),
        ("job key", status.job_key or "-"),
        (run_label, human_time(status.run_at)),
        ("created", human_time(status.created_at)),
        ("finished", human_time(status.finished_at)),
        ("cancel requested", "yes" if status.cancel_requested else "no"),
        ("interrupted", _interrupted(status.interrupted)),
    ]
    width = max(len(label) for label, _ in fields)
    for label, value in fields:
        print(f"{label:<{width}}  {terminal_safe(str(value))}")
    result = "-" if status.result is None else json.dumps(status.result, indent=2)
    print(f"{'result':<{width}}  {_indent(result, width + 2).lstrip()}")
    earlier = [e for e in errors if e.error.rstrip() != (status.last_error or "").rstrip()[:4000]]
    if earlier:
        print("earlier attempts:")
        for e in earlier:
            print(f"  attempt {e.attempt} ({human_time(e.at)}): {first_line(e.error, 100)}")
    if status.last_error:
        print("last error:")
        print(_indent(terminal_safe(status.last_error.rstrip(), keep_newlines=True), 2))
    else:
        print(f"{'last error':<{width}}  -")
    return EXIT_OK


def _interrupted(i: Interruptions | None) -> str:
    """How often stopping runners handed the job back unfinished (attempts not counted)."""
    if i is None:
        return "-"
    return f"{_plural(i.count, 'time')}, last at {human_time(i.last_at)} by {i.last_by or '?'}"


def _indent(text: str, spaces: int) -> str:
    pad = " " * spaces
    return "\n".join(pad + line for line in text.splitlines())


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _worker_state(w: WorkerInfo) -> str:
    if w.stale:
        return "STALE"
    return "idle" if w.idle else "busy"


def run_workers(ctx: Context, args: argparse.Namespace) -> int:
    """Prints the live runners."""
    with ctx.connect() as conn:
        found = list_workers(conn)
    if ctx.json:
        print_json(found)
        return EXIT_OK
    if not found:
        print("No runner is announced: none is running against this database.")
        return EXIT_OK
    table = [
        (
            w.host,
            w.pid,
            w.id,
            w.version,
            "*" if w.channel_names is None else ",".join(w.channel_names) or "(none)",
            None if w.min_concurrency is None else f"{w.min_concurrency}-{w.max_concurrency}",
            w.running,
            human_age(w.uptime.total_seconds()),
            human_age(w.heartbeat_age.total_seconds()),
            _worker_state(w),
        )
        for w in found
    ]
    headers = ["host", "pid", "runner id", "version", "channels", "concurrency", "running"]
    headers += ["up", "heartbeat", "state"]
    print(render_table(headers, table, numeric=[1, 6]))
    stale = sum(w.stale for w in found)
    print(f"({_plural(len(found), 'runner')}, {sum(w.running for w in found)} running jobs", end="")
    print(f", {stale} stale)" if stale else ")")
    return EXIT_OK
