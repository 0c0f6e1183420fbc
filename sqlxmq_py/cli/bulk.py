"""Bulk actions from the command line: ``retry`` and ``cancel`` with filter options instead of
ids, and ``delete`` and ``run-now``. Each counts the jobs first, asks (unless ``--yes``), then
works in batches, printing its progress on stderr."""

from __future__ import annotations

import argparse
import sys
import uuid
from typing import Any

import psycopg

from ..admin import (
    ACTION_STATES,
    BlockedChain,
    BulkAction,
    JobFilter,
    cancel_matching,
    chains_released,
    count_matching,
    delete_matching,
    retry_matching,
    run_now,
)
from ..admin._bulk import BATCH_SIZE
from ..states import JOB_STATES
from ._common import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    Commands,
    Context,
    add_command,
    err,
    parse_duration,
    parse_job_id,
    positive_int,
)
from ._output import print_json

__all__ = [
    "FILTER_HELP",
    "add_filter_options",
    "describe_chains",
    "has_filter",
    "ids_or_filter",
    "register",
    "run_matching",
]

_VERBS: dict[BulkAction, tuple[str, str]] = {
    "retry": ("retry", "retried"),
    "cancel": ("cancel", "cancelled"),
    "delete": ("delete", "deleted"),
    "run_now": ("run now", "made ready"),
}

FILTER_HELP = """\
Filter options select every job matching all of them, whatever its page: --state,
--channel, --name, --key, --error (text found in the last error, case-insensitive,
% and _ literal), --older-than and --newer-than (the job's age, e.g. 1h, 2d).
At least one is required, or --all. The count is shown first and confirmed on stdin
unless --yes is given (answering anything but y/yes aborts, exit 1); then the jobs
are changed in batches of --batch-size (default 1000), each its own transaction."""


def _states(action: BulkAction) -> str:
    return ", ".join(s for s in JOB_STATES if s in ACTION_STATES[action])


def add_filter_options(parser: argparse.ArgumentParser, action: BulkAction) -> None:
    """Adds the filter options, ``--all``, ``--yes`` and ``--batch-size`` to a command."""
    group = parser.add_argument_group(
        "filter (every matching job; applies to " + _states(action) + " jobs)"
    )
    group.add_argument(
        "--state",
        dest="states",
        action="append",
        choices=[s for s in JOB_STATES if s in ACTION_STATES[action]],
        help="only jobs in this state (repeatable)",
    )
    group.add_argument("--channel", dest="channel_name", help="only jobs of this channel")
    group.add_argument("--name", help="only jobs of this name")
    group.add_argument("--key", dest="job_key", help="only the job with this key")
    group.add_argument("--error", help="only jobs whose last error contains this text")
    group.add_argument(
        "--older-than", type=parse_duration, metavar="DURATION", help="created longer ago"
    )
    group.add_argument(
        "--newer-than", type=parse_duration, metavar="DURATION", help="created more recently"
    )
    group.add_argument("--all", action="store_true", help="every job (no other filter)")
    group.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    group.add_argument(
        "--batch-size",
        type=positive_int,
        default=BATCH_SIZE,
        metavar="N",
        help="jobs per batch and transaction (default: %(default)s)",
    )


def has_filter(args: argparse.Namespace) -> bool:
    """Whether any filter option (or ``--all``) was given."""
    return bool(args.all) or any(
        getattr(args, option) is not None
        for option in (
            "states",
            "channel_name",
            "name",
            "job_key",
            "error",
            "older_than",
            "newer_than",
        )
    )


def _filter(args: argparse.Namespace) -> JobFilter:
    return JobFilter(
        states=args.states,
        channel_name=args.channel_name,
        name=args.name,
        job_key=args.job_key,
        error=args.error,
        older_than=args.older_than,
        newer_than=args.newer_than,
        all=args.all,
    )


def _confirm(question: str) -> None:
    sys.stderr.write(question + " [y/N] ")
    sys.stderr.flush()
    if sys.stdin.readline().strip().lower() not in ("y", "yes"):
        raise CliError("aborted: nothing was changed", EXIT_ERROR)


def describe_chains(chains: list[BlockedChain]) -> str:
    """One indented line per chain: channel, args, head, jobs waiting."""
    lines = [
        f"  {c.channel_name!r} (args {c.channel_args!r}): head {c.head_id} ({c.head_name}), "
        f"{c.waiting} waiting"
        for c in chains
    ]
    return "\n".join(lines)


def _release_chains(ctx: Context, args: argparse.Namespace, chains: list[BlockedChain]) -> bool:
    """Whether the delete may release ``chains``: asked on stdin, or ``--release-chains``."""
    if not chains:
        return False
    if args.release_chains:
        return True
    waiting = sum(c.waiting for c in chains)
    err(
        f"Deleting these jobs removes the failed head of {len(chains)} ordered chain(s), "
        f"which runs the {waiting} job(s) waiting behind:\n" + describe_chains(chains)
    )
    if args.yes:
        raise CliError(
            "not deleted: ordered chains would be released; add --release-chains to release "
            "them, or narrow the filter",
            EXIT_ERROR,
        )
    _confirm("Release these chains?")
    return True


def run_matching(ctx: Context, args: argparse.Namespace, action: BulkAction) -> int:
    """Counts the matching jobs, asks, then acts on them in batches."""
    job_filter = _filter(args)
    verb, done = _VERBS[action]
    with ctx.connect() as conn:
        count = count_matching(conn, job_filter, action=action)
        if count == 0:
            if ctx.json:
                print_json({"action": action, "matched": 0, "changed": 0})
            else:
                print(f"Nothing to {verb}: no {_states(action)} job matches.")
            return EXIT_OK
        release = False
        if action == "delete":
            release = _release_chains(ctx, args, chains_released(conn, job_filter))
        if not args.yes:
            _confirm(f"{verb.capitalize()} {count} matching job{'s' if count != 1 else ''}?")
        changed = _act(conn, ctx, action, job_filter, args, release, count)
    if ctx.json:
        print_json({"action": action, "matched": count, "changed": changed})
    else:
        print(f"{done.capitalize()} {changed} job{'s' if changed != 1 else ''}.")
    return EXIT_OK


def _act(
    conn: psycopg.Connection[Any],
    ctx: Context,
    action: BulkAction,
    job_filter: JobFilter,
    args: argparse.Namespace,
    release: bool,
    count: int,
) -> int:
    def progress(total: int) -> None:
        if not ctx.json:
            err(f"{_VERBS[action][1]} {total} of about {count} ...")

    batch = args.batch_size
    if action == "retry":
        return retry_matching(conn, job_filter, batch_size=batch, progress=progress)
    if action == "cancel":
        return cancel_matching(
            conn, job_filter, reason=args.reason, batch_size=batch, progress=progress
        )
    if action == "delete":
        return delete_matching(
            conn, job_filter, release_chains=release, batch_size=batch, progress=progress
        )
    return run_now(conn, job_filter, batch_size=batch, progress=progress)


def ids_or_filter(args: argparse.Namespace, action: BulkAction) -> bool:
    """Whether the command acts on a filter (True) or on its ids (False).

    Raises:
        CliError: both or neither were given (a usage error).
    """
    if args.job_ids and has_filter(args):
        raise CliError(f"{action}: give job ids or filter options, not both", EXIT_USAGE)
    if not args.job_ids and not has_filter(args):
        raise CliError(
            f"{action}: give job ids, or filter options (--state, --channel, --name, --key, "
            "--error, --older-than, --newer-than, or --all)",
            EXIT_USAGE,
        )
    return not args.job_ids


def register(commands: Commands) -> None:
    """Adds the ``delete`` and ``run-now`` commands."""
    delete_cmd = add_command(
        commands,
        "delete",
        summary="delete every failed, completed or cancelled job matching a filter",
        description=(
            "Deletes matching failed jobs (from the queue) and kept completed and cancelled\n"
            "jobs (from the history). Waiting and running jobs are never touched.\n\n"
            "Deleting the failed head of an ordered chain runs the jobs waiting behind it:\n"
            "the command lists such chains and asks; with --yes it refuses (exit 1) unless\n"
            "--release-chains is given too.\n\n" + FILTER_HELP
        ),
    )
    add_filter_options(delete_cmd, "delete")
    delete_cmd.add_argument(
        "--release-chains",
        action="store_true",
        help="delete failed chain heads too, running the jobs behind them",
    )
    delete_cmd.set_defaults(handler=lambda ctx, args: run_matching(ctx, args, "delete"))

    run_now_cmd = add_command(
        commands,
        "run-now",
        summary="make scheduled or retrying jobs ready now",
        description=(
            "Makes scheduled and retrying jobs (these ids, or every job matching the filter)\n"
            "ready now, with the attempts they have left. A job still behind its ordered\n"
            "chain or waiting for parent jobs runs when they let it. With ids, exits 1 if\n"
            "one is not a scheduled or retrying job.\n\n" + FILTER_HELP
        ),
    )
    run_now_cmd.add_argument("job_ids", nargs="*", type=parse_job_id, metavar="ID", help="job ids")
    add_filter_options(run_now_cmd, "run_now")
    run_now_cmd.set_defaults(handler=_run_now)


def _run_now(ctx: Context, args: argparse.Namespace) -> int:
    if ids_or_filter(args, "run_now"):
        return run_matching(ctx, args, "run_now")
    wanted: list[uuid.UUID] = list(dict.fromkeys(args.job_ids))
    with ctx.connect() as conn:
        changed = run_now(conn, wanted)
    if ctx.json:
        print_json({"changed": changed, "asked": len(wanted)})
    else:
        print(f"Made {changed} job{'s' if changed != 1 else ''} ready now.")
    if changed < len(wanted):
        err(f"sqlxmq: error: {len(wanted) - changed} job(s) were not scheduled or retrying")
        return EXIT_ERROR
    return EXIT_OK
