"""``sqlxmq schedules`` and ``sqlxmq schedule enable|disable|delete|trigger NAME``: looking at
and operating cron schedules."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import psycopg

from ..admin import (
    delete_schedule,
    disable_schedule,
    enable_schedule,
    list_schedules,
    trigger_schedule,
)
from ._common import EXIT_ERROR, EXIT_OK, CliError, Commands, Context, add_command, err
from ._output import human_age, print_json, render_table, terminal_safe

__all__ = ["register"]

ACTIONS = ("enable", "disable", "delete", "trigger")


def register(commands: Commands) -> None:
    """Adds the ``schedules`` and ``schedule`` commands."""
    list_cmd = add_command(
        commands,
        "schedules",
        summary="list cron schedules: expression, time zone, next and last tick",
        description=(
            "Lists the cron schedules runners have recorded: the job each spawns, its\n"
            "expression and time zone, its next tick (- while disabled), the last tick a\n"
            "runner spawned (- for none yet), its backfill window and whether it is enabled.\n"
            "Times are UTC."
        ),
    )
    list_cmd.set_defaults(handler=run_schedules)

    one_cmd = add_command(
        commands,
        "schedule",
        summary="enable, disable, delete or trigger a cron schedule",
        description=(
            "enable   runners tick the schedule again, from its next tick on (ticks that\n"
            "         fell while it was disabled are not spawned)\n"
            "disable  runners stop ticking it; a runner that declares it at start-up keeps\n"
            "         it disabled, until it is enabled here\n"
            "delete   forgets it (asks first; --yes does not); a runner that declares it\n"
            "         records it again, enabled, when it starts: disable it to stop it\n"
            "trigger  spawns its job once now (the job a tick spawns, without a job key);\n"
            "         its ticks are unchanged\n\n"
            "Exits 1 if there is no such schedule."
        ),
    )
    one_cmd.add_argument("action", choices=ACTIONS, metavar="enable|disable|delete|trigger")
    one_cmd.add_argument("name", metavar="NAME", help="the schedule's name")
    one_cmd.add_argument("--yes", "-y", action="store_true", help="delete without asking")
    one_cmd.set_defaults(handler=run_schedule)


def run_schedules(ctx: Context, args: argparse.Namespace) -> int:
    """Lists schedules."""
    with ctx.connect() as conn:
        schedules = list_schedules(conn)
    if ctx.json:
        print_json({"schedules": schedules})
        return EXIT_OK
    if not schedules:
        print("No schedules: no runner has recorded a cron schedule.")
        return EXIT_OK
    rows = [
        (
            s.name,
            s.job_name,
            s.cron,
            s.timezone,
            s.next_tick,
            s.last_spawned_tick,
            human_age(s.backfill.total_seconds()) if s.backfill else None,
            "enabled" if s.enabled else "disabled",
        )
        for s in schedules
    ]
    headers = ["schedule", "job", "cron", "time zone", "next tick", "last tick", "backfill"]
    print(render_table([*headers, "state"], rows))
    return EXIT_OK


def run_schedule(ctx: Context, args: argparse.Namespace) -> int:
    """Enables, disables, deletes or triggers one schedule."""
    name: str = args.name
    action: str = args.action
    with ctx.connect() as conn:
        if action == "trigger":
            job_id = trigger_schedule(conn, name)
            found = job_id is not None
        else:
            if action == "delete" and not args.yes and _exists(conn, name):
                _confirm(f"Delete the schedule {name!r}? [y/N] ")
            operate = {
                "enable": enable_schedule,
                "disable": disable_schedule,
                "delete": delete_schedule,
            }[action]
            found = operate(conn, name)
            job_id = None
    if not found:
        err(f"sqlxmq: error: no such schedule: {name!r} (see `sqlxmq schedules`)")
        return EXIT_ERROR
    done = {"enable": "enabled", "disable": "disabled", "delete": "deleted"}
    if ctx.json:
        print_json({"schedule": name, "action": action, "job_id": job_id})
    elif job_id is not None:
        print(f"triggered {terminal_safe(name)}: spawned job {job_id}")
    else:
        print(f"{done[action]} {terminal_safe(name)}")
    return EXIT_OK


def _exists(conn: psycopg.Connection[Any], name: str) -> bool:
    return any(s.name == name for s in list_schedules(conn))


def _confirm(question: str) -> None:
    sys.stderr.write(question)
    sys.stderr.flush()
    if sys.stdin.readline().strip().lower() not in ("y", "yes"):
        raise CliError("aborted: nothing was deleted", EXIT_ERROR)
