"""``sqlxmq channels``, ``pause``, ``resume`` and ``limit``: looking at and controlling
channels."""

from __future__ import annotations

import argparse

from ..admin import list_channels, pause_channel, resume_channel, set_channel_limit
from ._common import EXIT_OK, Commands, Context, add_command
from ._output import print_json, render_table, terminal_safe

__all__ = ["parse_limit", "register"]


def parse_limit(text: str) -> int | None:
    """A limit argument: a whole number >= 0, or ``none`` (no limit)."""
    if text.strip().lower() == "none":
        return None
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0 or 'none', got {text!r}")
    return value


def register(commands: Commands) -> None:
    """Adds the ``channels``, ``pause``, ``resume`` and ``limit`` commands."""
    list_cmd = add_command(
        commands,
        "channels",
        summary="list channels: paused or not, limits, ready and running jobs",
        description=(
            "Lists every channel with jobs, a concurrency limit or a pause: whether it is\n"
            "paused, its limit (- for none), and its ready and running jobs."
        ),
    )
    list_cmd.set_defaults(handler=run_channels)

    pause_cmd = add_command(
        commands,
        "pause",
        summary="stop runners leasing a channel's jobs",
        description=(
            "Pauses a channel: runners (and pull consumers) start none of its jobs until it\n"
            "is resumed; its running jobs finish. Runners stop within a maintenance interval\n"
            "(1 s by default), at once where notifications reach them."
        ),
    )
    pause_cmd.add_argument("channel", metavar="CHANNEL", help="the channel name")
    pause_cmd.set_defaults(handler=run_pause)

    resume_cmd = add_command(
        commands,
        "resume",
        summary="let runners lease a paused channel's jobs again",
        description="Resumes a paused channel (its concurrency limit, if any, stays).",
    )
    resume_cmd.add_argument("channel", metavar="CHANNEL", help="the channel name")
    resume_cmd.set_defaults(handler=run_resume)

    limit_cmd = add_command(
        commands,
        "limit",
        summary="set a channel's concurrency limit across all runners",
        description=(
            "Lets at most N jobs of a channel run at once across all runners; 'none'\n"
            "removes the limit (a pause stays). 0 holds the channel like a pause."
        ),
    )
    limit_cmd.add_argument("channel", metavar="CHANNEL", help="the channel name")
    limit_cmd.add_argument("limit", type=parse_limit, metavar="N|none", help="the limit")
    limit_cmd.set_defaults(handler=run_limit)


def run_channels(ctx: Context, args: argparse.Namespace) -> int:
    """Lists channels."""
    with ctx.connect() as conn:
        channels = list_channels(conn)
    if ctx.json:
        print_json({"channels": channels})
        return EXIT_OK
    if not channels:
        print("No channels: no jobs, limits or pauses.")
        return EXIT_OK
    rows = [
        (c.channel_name, "paused" if c.paused else "active", c.max_running, c.ready, c.running)
        for c in channels
    ]
    print(render_table(["channel", "state", "limit", "ready", "running"], rows, numeric=[2, 3, 4]))
    return EXIT_OK


def run_pause(ctx: Context, args: argparse.Namespace) -> int:
    """Pauses a channel."""
    channel = args.channel
    with ctx.connect() as conn:
        pause_channel(conn, channel)
    if ctx.json:
        print_json({"channel": channel, "paused": True})
    else:
        print(f"paused {terminal_safe(channel)}")
    return EXIT_OK


def run_resume(ctx: Context, args: argparse.Namespace) -> int:
    """Resumes a channel."""
    channel = args.channel
    with ctx.connect() as conn:
        resume_channel(conn, channel)
    if ctx.json:
        print_json({"channel": channel, "paused": False})
    else:
        print(f"resumed {terminal_safe(channel)}")
    return EXIT_OK


def run_limit(ctx: Context, args: argparse.Namespace) -> int:
    """Sets or removes a channel's limit."""
    channel = args.channel
    with ctx.connect() as conn:
        set_channel_limit(conn, channel, args.limit)
    if ctx.json:
        print_json({"channel": channel, "max_running": args.limit})
    elif args.limit is None:
        print(f"removed the limit of {terminal_safe(channel)}")
    else:
        jobs = "running job" if args.limit == 1 else "running jobs"
        print(f"limited {terminal_safe(channel)} to {args.limit} {jobs}")
    return EXIT_OK
