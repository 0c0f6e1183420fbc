"""``sqlxmq retry``, ``cancel``, ``purge`` and ``clear``: changing the queue."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import timedelta

from ..admin import cancel, purge, queue_counts, retry
from ..spawn import clear
from ._common import (
    EXIT_ERROR,
    EXIT_OK,
    CliError,
    Commands,
    Context,
    add_command,
    err,
    parse_duration,
    parse_job_id,
)
from ._output import human_age, print_json, terminal_safe
from .bulk import FILTER_HELP, add_filter_options, describe_chains, ids_or_filter, run_matching

__all__ = ["register"]


def register(commands: Commands) -> None:
    """Adds the ``retry``, ``cancel``, ``purge`` and ``clear`` commands."""
    retry_cmd = add_command(
        commands,
        "retry",
        summary="run failed jobs again",
        description=(
            "Runs failed jobs again, each with a fresh set of attempts. Retrying the failed\n"
            "head of an ordered chain unblocks the chain once it succeeds. With ids, exits 1\n"
            "if an id is not a failed job (unknown, or not failed).\n\n" + FILTER_HELP
        ),
    )
    retry_cmd.add_argument(
        "job_ids", nargs="*", type=parse_job_id, metavar="ID", help="ids of failed jobs"
    )
    add_filter_options(retry_cmd, "retry")
    retry_cmd.set_defaults(handler=run_retry)

    cancel_cmd = add_command(
        commands,
        "cancel",
        summary="cancel waiting jobs, ask running ones to stop",
        description=(
            "Cancels jobs. Waiting jobs leave the queue now (kept as cancelled history; an\n"
            "ordered chain closes up behind them; their continuations are cancelled too).\n"
            "Running jobs are asked to stop: current_job.cancelled becomes true. With ids,\n"
            "exits 1 if an id is unknown. A filter cancels only jobs not running yet\n"
            "(scheduled, waiting, ready, retrying): a job a runner leases meanwhile runs.\n\n"
            + FILTER_HELP
        ),
    )
    cancel_cmd.add_argument("job_ids", nargs="*", type=parse_job_id, metavar="ID", help="job ids")
    add_filter_options(cancel_cmd, "cancel")
    cancel_cmd.add_argument(
        "--reason",
        default="cancelled",
        help="why, recorded with the job (default: %(default)s)",
    )
    cancel_cmd.set_defaults(handler=run_cancel)

    purge_cmd = add_command(
        commands,
        "purge",
        summary="delete old failed jobs and history",
        description=(
            "Deletes expired history (always), history that finished longer ago than\n"
            "--history-older-than, and failed jobs that failed longer ago than\n"
            "--failed-older-than. Waiting and running jobs are never touched. The failed\n"
            "head of an ordered chain with jobs behind it is kept (deleting it would run\n"
            "them): the command lists such chains; --release-chains purges them too.\n\n"
            "Durations are a number and a unit: 90s, 15m, 12h, 30d, 2w, or a\n"
            "combination like 1h30m."
        ),
    )
    purge_cmd.add_argument(
        "--failed-older-than",
        type=parse_duration,
        metavar="DURATION",
        help="delete failed jobs whose last attempt is older than this",
    )
    purge_cmd.add_argument(
        "--history-older-than",
        type=parse_duration,
        metavar="DURATION",
        help="delete kept history (completed or cancelled jobs) that finished before this",
    )
    purge_cmd.add_argument(
        "--release-chains",
        action="store_true",
        help="purge failed chain heads too, running the jobs waiting behind them",
    )
    purge_cmd.set_defaults(handler=run_purge)

    clear_cmd = add_command(
        commands,
        "clear",
        summary="delete every job of some channels",
        description=(
            "Deletes every job of the given channels, whatever its state: waiting, failed\n"
            "and running jobs too (their runners lose their leases). Asks for confirmation\n"
            "on stdin unless --yes is given; answering anything but y/yes aborts (exit 1)."
        ),
    )
    clear_cmd.add_argument("channels", nargs="+", metavar="CHANNEL", help="channel names")
    clear_cmd.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    clear_cmd.set_defaults(handler=run_clear)


def run_retry(ctx: Context, args: argparse.Namespace) -> int:
    """Retries failed jobs: these ids, or every match of the filter options."""
    if ids_or_filter(args, "retry"):
        return run_matching(ctx, args, "retry")
    wanted = list(dict.fromkeys(args.job_ids))
    with ctx.connect() as conn:
        retried = set(retry(conn, wanted))
    missed = [job_id for job_id in wanted if job_id not in retried]
    done = [job_id for job_id in wanted if job_id in retried]
    if ctx.json:
        print_json({"retried": done, "not_retried": missed})
    else:
        for job_id in done:
            print(f"retried {job_id}")
    if missed:
        err(
            "sqlxmq: error: not retried (no failed job with this id): "
            + ", ".join(map(str, missed))
        )
        return EXIT_ERROR
    return EXIT_OK


def run_cancel(ctx: Context, args: argparse.Namespace) -> int:
    """Cancels jobs: these ids, or every match of the filter options."""
    if ids_or_filter(args, "cancel"):
        return run_matching(ctx, args, "cancel")
    wanted = list(dict.fromkeys(args.job_ids))
    with ctx.connect() as conn:
        outcomes = cancel(conn, wanted, reason=args.reason)
    missed = [job_id for job_id in wanted if job_id not in outcomes]
    if ctx.json:
        print_json({"outcomes": outcomes, "unknown": missed})
    else:
        for job_id in wanted:
            outcome = outcomes.get(job_id)
            if outcome == "cancelled":
                print(f"cancelled {job_id}")
            elif outcome is not None:
                print(f"cancel requested {job_id} (running: its runner is asked to stop it)")
    if missed:
        err("sqlxmq: error: no such job (unknown or finished): " + ", ".join(map(str, missed)))
        return EXIT_ERROR
    return EXIT_OK


def run_purge(ctx: Context, args: argparse.Namespace) -> int:
    """Purges failed jobs and history."""
    what = ["expired history"]
    if args.history_older_than is not None:
        what.append(f"history finished over {_age(args.history_older_than)} ago")
    if args.failed_older_than is not None:
        what.append(f"failed jobs older than {_age(args.failed_older_than)}")
    if not ctx.json:
        err(f"Purging {', '.join(what)} ...")
    started = time.monotonic()
    with ctx.connect() as conn:
        result = purge(
            conn,
            failed_before=args.failed_older_than,
            history_before=args.history_older_than,
            release_chains=args.release_chains,
        )
    elapsed = time.monotonic() - started
    if ctx.json:
        kept = [
            {
                "channel_name": c.channel_name,
                "channel_args": c.channel_args,
                "head_id": c.head_id,
                "waiting": c.waiting,
            }
            for c in result.chains_kept
        ]
        print_json(
            {
                "failed": result.failed,
                "history": result.history,
                "seconds": elapsed,
                "chains_kept": kept,
            }
        )
    else:
        print(
            f"Purged {result.failed} failed job{'s' if result.failed != 1 else ''} and "
            f"{result.history} history entr{'ies' if result.history != 1 else 'y'} "
            f"in {elapsed:.2f} s."
        )
    if result.chains_kept and not ctx.json:
        err(
            f"Kept the failed head of {len(result.chains_kept)} ordered chain(s): purging it "
            "would run the jobs waiting behind it (retry or cancel it, or purge with "
            "--release-chains):\n" + describe_chains(list(result.chains_kept))
        )
    return EXIT_OK


def _age(value: timedelta) -> str:
    return human_age(value.total_seconds())


def run_clear(ctx: Context, args: argparse.Namespace) -> int:
    """Clears channels, after confirmation."""
    channels = list(dict.fromkeys(args.channels))
    names = ", ".join(terminal_safe(c) for c in channels)
    with ctx.connect() as conn:
        count = sum(c.count for c in queue_counts(conn) if c.channel_name in channels)
        if count == 0:
            if ctx.json:
                print_json({"deleted": 0, "channels": channels})
            else:
                print(f"Nothing to clear: no jobs in {names}.")
            return EXIT_OK
        if not args.yes:
            sys.stderr.write(
                f"Delete all {count} job{'s' if count != 1 else ''} of {names} (running and "
                "failed ones too)? [y/N] "
            )
            sys.stderr.flush()
            answer = sys.stdin.readline().strip().lower()
            if answer not in ("y", "yes"):
                raise CliError("aborted: nothing was deleted", EXIT_ERROR)
        deleted = clear(conn, channels)
    if ctx.json:
        print_json({"deleted": deleted, "channels": channels})
    else:
        print(f"Deleted {deleted} job{'s' if deleted != 1 else ''} from {names}.")
    return EXIT_OK
