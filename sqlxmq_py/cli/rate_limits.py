"""``sqlxmq rate-limits`` and ``rate-limit``: listing and setting the rate limits per key."""

from __future__ import annotations

import argparse

from ..admin import list_rate_limits, remove_rate_limit, set_rate_limit
from ._common import EXIT_OK, EXIT_USAGE, CliError, Commands, Context, add_command, parse_duration
from ._output import human_age, print_json, render_table

__all__ = ["parse_starts", "register"]


def parse_starts(text: str) -> int | None:
    """A number of starts: a whole number >= 1, or ``none`` (remove the rule)."""
    if text.strip().lower() == "none":
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1 or 'none', got {text!r}")
    return value


def register(commands: Commands) -> None:
    """Adds the ``rate-limits`` and ``rate-limit`` commands."""
    list_cmd = add_command(
        commands,
        "rate-limits",
        summary="list the rate limits per key",
        description=(
            "Lists the rate rules: at most N starts per period for the jobs carrying a key\n"
            "the pattern names (the key itself, shared; or, for a prefix ending in '*', each\n"
            "key under it, with a budget of its own)."
        ),
    )
    list_cmd.set_defaults(handler=run_rate_limits)

    set_cmd = add_command(
        commands,
        "rate-limit",
        summary="set (or remove) a rate limit per key across all runners",
        description=(
            "Allows at most N starts in any window of PER for the jobs carrying KEY ('openai':\n"
            "one budget for all of them) or a key under a prefix ('customer:*': a budget per\n"
            "key); 'none' removes the rule. Leases apply it from their next start."
        ),
    )
    set_cmd.add_argument("key", metavar="KEY", help="a key, or a prefix ending in '*'")
    set_cmd.add_argument("starts", type=parse_starts, metavar="N|none", help="starts per PER")
    set_cmd.add_argument(
        "per", type=parse_duration, nargs="?", metavar="PER", help="the window, like 1s or 1m"
    )
    set_cmd.set_defaults(handler=run_rate_limit)


def run_rate_limits(ctx: Context, args: argparse.Namespace) -> int:
    """Lists the rules."""
    with ctx.connect() as conn:
        rules = list_rate_limits(conn)
    if ctx.json:
        print_json({"rate_limits": rules})
        return EXIT_OK
    if not rules:
        print("No rate limits.")
        return EXIT_OK
    rows = [
        (
            r.key_pattern,
            r.max_starts,
            human_age(r.period.total_seconds()),
            "per key" if r.per_key else "shared",
        )
        for r in rules
    ]
    print(render_table(["key", "starts", "per", "budget"], rows, numeric=[1, 2]))
    return EXIT_OK


def run_rate_limit(ctx: Context, args: argparse.Namespace) -> int:
    """Sets or removes a rule."""
    key = args.key
    if args.starts is None:
        if args.per is not None:
            raise CliError("rate-limit KEY none takes no PER", EXIT_USAGE)
        with ctx.connect() as conn:
            removed = remove_rate_limit(conn, key)
        if ctx.json:
            print_json({"key_pattern": key, "removed": removed})
        else:
            print(f"removed the rate limit of {key}" if removed else f"{key} had no rate limit")
        return EXIT_OK
    if args.per is None:
        raise CliError("rate-limit KEY N needs PER, the window (like 1s or 1m)", EXIT_USAGE)
    with ctx.connect() as conn:
        set_rate_limit(conn, key, args.starts, per=args.per)
    if ctx.json:
        print_json({"key_pattern": key, "max_starts": args.starts, "period": args.per})
    else:
        print(f"limited {key} to {args.starts} starts per {human_age(args.per.total_seconds())}")
    return EXIT_OK
