"""Controlling channels: pausing and resuming them, their concurrency limits, and the list of
channels with their state.

A channel's pause and limit live in one row of ``mq_channel_limits`` (migration 0007), written
by ``mq_set_channel``, which tells the channel's runners at commit; runners re-read the table
before their next lease (and every maintenance interval, should the notification not arrive).
A paused channel leases nothing, in runners and in :func:`sqlxmq_py.pull.fetch`; its running
jobs finish.
"""

from __future__ import annotations

from collections.abc import Coroutine
from dataclasses import dataclass
from itertools import starmap
from typing import Any, NamedTuple, overload

from .. import _connections
from .._connections import AnyConnection, AsyncConnectionLike, Rows, SyncConnectionLike
from .._validate import check_int, check_name
from ..sql import query

__all__ = [
    "ChannelInfo",
    "channel_info",
    "channel_limits",
    "list_channels",
    "pause_channel",
    "paused_channels",
    "resume_channel",
    "set_channel_limit",
]


@dataclass(frozen=True, kw_only=True)
class ChannelInfo:
    """A channel with jobs, a limit or a pause: whether it is paused, its limit (None: none),
    and its ready and running jobs."""

    channel_name: str
    paused: bool
    max_running: int | None
    ready: int
    running: int


class _ChannelRow(NamedTuple):
    """A row of ``list_channels``."""

    channel_name: str
    paused: bool
    max_running: int | None
    ready: int
    running: int


def set_params(
    channel_name: object, *, paused: bool | None, change_limit: bool, max_running: object
) -> dict[str, object]:
    """The parameters of ``set_channel``, checked."""
    limit = None if max_running is None else check_int("max_running", max_running, minimum=0)
    return {
        "channel_name": check_name("channel_name", channel_name),
        "paused": paused,
        "change_limit": change_limit,
        "max_running": limit,
    }


def _nothing(_rows: Rows) -> None:
    return None


@overload
def pause_channel(conn: SyncConnectionLike, channel_name: str) -> None: ...


@overload
def pause_channel(conn: AsyncConnectionLike, channel_name: str) -> Coroutine[Any, Any, None]: ...


def pause_channel(conn: AnyConnection, channel_name: str) -> Coroutine[Any, Any, None] | None:
    """Pauses the channel once the caller's transaction commits: runners (and ``fetch``) lease
    none of its jobs until :func:`resume_channel`; its running jobs finish. Runners stop within
    a maintenance interval, at once where notifications reach them.

    Raises:
        ConfigurationError: ``channel_name`` is not a valid channel name.
    """
    params = set_params(channel_name, paused=True, change_limit=False, max_running=None)
    return _connections.run(conn, query("set_channel"), params, _nothing)


@overload
def resume_channel(conn: SyncConnectionLike, channel_name: str) -> None: ...


@overload
def resume_channel(conn: AsyncConnectionLike, channel_name: str) -> Coroutine[Any, Any, None]: ...


def resume_channel(conn: AnyConnection, channel_name: str) -> Coroutine[Any, Any, None] | None:
    """Resumes a paused channel (a channel that is not paused stays as it is); its limit, if
    any, stays.

    Raises:
        ConfigurationError: ``channel_name`` is not a valid channel name.
    """
    params = set_params(channel_name, paused=False, change_limit=False, max_running=None)
    return _connections.run(conn, query("set_channel"), params, _nothing)


@overload
def set_channel_limit(
    conn: SyncConnectionLike, channel_name: str, max_running: int | None
) -> None: ...


@overload
def set_channel_limit(
    conn: AsyncConnectionLike, channel_name: str, max_running: int | None
) -> Coroutine[Any, Any, None]: ...


def set_channel_limit(
    conn: AnyConnection, channel_name: str, max_running: int | None
) -> Coroutine[Any, Any, None] | None:
    """Lets at most ``max_running`` jobs of the channel run at once across all runners
    (``None`` removes the limit; a pause stays). Runners pick the change up as a pause.

    Raises:
        ConfigurationError: an invalid channel name, or ``max_running`` not an int >= 0.
    """
    params = set_params(channel_name, paused=None, change_limit=True, max_running=max_running)
    return _connections.run(conn, query("set_channel"), params, _nothing)


def _limits(rows: Rows) -> dict[str, int]:
    return {name: limit for name, limit, _paused in rows if limit is not None}


@overload
def channel_limits(conn: SyncConnectionLike) -> dict[str, int]: ...


@overload
def channel_limits(conn: AsyncConnectionLike) -> Coroutine[Any, Any, dict[str, int]]: ...


def channel_limits(conn: AnyConnection) -> dict[str, int] | Coroutine[Any, Any, dict[str, int]]:
    """The channel limits set with :func:`set_channel_limit`."""
    return _connections.run(conn, query("channel_limits"), None, _limits)


def _paused(rows: Rows) -> list[str]:
    return [name for name, _limit, paused in rows if paused]


@overload
def paused_channels(conn: SyncConnectionLike) -> list[str]: ...


@overload
def paused_channels(conn: AsyncConnectionLike) -> Coroutine[Any, Any, list[str]]: ...


def paused_channels(conn: AnyConnection) -> list[str] | Coroutine[Any, Any, list[str]]:
    """The paused channels, by name (a read of the small table of limits and pauses, not of
    the queue)."""
    return _connections.run(conn, query("channel_limits"), None, _paused)


def _channels(rows: Rows) -> list[ChannelInfo]:
    return [ChannelInfo(**r._asdict()) for r in starmap(_ChannelRow, rows)]


@overload
def list_channels(conn: SyncConnectionLike) -> list[ChannelInfo]: ...


@overload
def list_channels(conn: AsyncConnectionLike) -> Coroutine[Any, Any, list[ChannelInfo]]: ...


def list_channels(
    conn: AnyConnection,
) -> list[ChannelInfo] | Coroutine[Any, Any, list[ChannelInfo]]:
    """Every channel with jobs, a limit or a pause, by name: paused or not, its limit and its
    ready and running jobs (counted exactly)."""
    return _connections.run(conn, query("list_channels"), None, _channels)


def _one_channel(rows: Rows) -> ChannelInfo:
    return ChannelInfo(**_ChannelRow(*rows[0])._asdict())


@overload
def channel_info(conn: SyncConnectionLike, channel_name: str) -> ChannelInfo: ...


@overload
def channel_info(
    conn: AsyncConnectionLike, channel_name: str
) -> Coroutine[Any, Any, ChannelInfo]: ...


def channel_info(
    conn: AnyConnection, channel_name: str
) -> ChannelInfo | Coroutine[Any, Any, ChannelInfo]:
    """One channel as :func:`list_channels` shows it (a channel with nothing to say: not
    paused, no limit, no jobs), read through indexes whatever the length of the queue.

    Raises:
        ConfigurationError: ``channel_name`` is not a valid channel name.
    """
    params = {"channel_name": check_name("channel_name", channel_name)}
    return _connections.run(conn, query("channel_info"), params, _one_channel)
