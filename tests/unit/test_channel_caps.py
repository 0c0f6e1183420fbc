"""What a runner makes of the table of limits and pauses, and the CLI's limit argument."""

from __future__ import annotations

import argparse

import pytest

from sqlxmq_py.cli.channels import parse_limit
from sqlxmq_py.runner._leasing import caps_loosened, channel_caps

ROWS = [("a", None, True), ("b", 3, False), ("c", 5, True), ("d", 0, False), ("e", None, False)]


def test_a_paused_channel_is_capped_at_zero_whatever_its_limit() -> None:
    assert channel_caps(ROWS, None) == {"a": 0, "b": 3, "c": 0, "d": 0}


def test_a_runner_of_named_channels_keeps_only_its_own() -> None:
    assert channel_caps(ROWS, ["b", "c", "z"]) == {"b": 3, "c": 0}
    assert channel_caps(ROWS, []) == {}
    assert channel_caps([], None) == {}


@pytest.mark.parametrize(
    ("old", "new", "loosened"),
    [
        ({}, {}, False),
        ({}, {"a": 0}, False),  # paused (or limited): nothing more may run
        ({"a": 0}, {}, True),  # resumed
        ({"a": 0}, {"a": 2}, True),  # resumed, with a limit
        ({"a": 2}, {"a": 1}, False),
        ({"a": 2}, {"a": 0, "b": 3}, False),
    ],
)
def test_caps_loosened(old: dict[str, int], new: dict[str, int], loosened: bool) -> None:
    assert caps_loosened(old, new) is loosened


@pytest.mark.parametrize(("text", "value"), [("0", 0), ("12", 12), ("none", None), ("NONE", None)])
def test_limits_the_cli_takes(text: str, value: int | None) -> None:
    assert parse_limit(text) == value


@pytest.mark.parametrize("text", ["-1", "1.5", "", "many", "None1"])
def test_limits_the_cli_refuses(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="whole number >= 0 or 'none'"):
        parse_limit(text)
