"""The messages of failed spawn assertions: they say what was spawned."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .._connections import Rows
from ..errors import PayloadError
from ._spawned import SpawnedJob

__all__ = ["OTHERS", "SHOWN", "describe", "failure"]

OTHERS = b"""
SELECT p.name, count(*) FROM mq_payloads AS p JOIN mq_jobs AS j ON j.id = p.id
GROUP BY p.name ORDER BY count(*) DESC, p.name LIMIT 10
"""

SHOWN = 20
"""Jobs listed in an assertion's message."""


def describe(job: SpawnedJob[Any]) -> str:
    """One job, on one line, for a message."""
    try:
        payload = repr(job.payload)
    except PayloadError as exc:
        payload = f"{job.payload_json} (invalid: {exc})"
    if len(payload) > 200:
        payload = payload[:200] + "…"
    return (
        f"  - {job.id} {job.state} channel_name={job.channel_name!r} "
        f"channel_args={job.channel_args!r} job_key={job.job_key!r} priority={job.priority} "
        f"run_at={job.run_at.isoformat() if job.run_at else None} payload={payload}"
    )


def failure(
    name: str,
    one: bool,
    filters: str,
    found: Sequence[SpawnedJob[Any]],
    every: Sequence[SpawnedJob[Any]],
    others: Rows,
) -> str:
    """The message of a failed ``assert_spawned`` (``one``) or ``refute_spawned``: what
    matched, every job of that name, and when there is none, the names of the queued jobs.

    Args:
        name: the job's name.
        one: whether exactly one match was expected (else none).
        filters: the filters, as shown.
        found: the matching jobs.
        every: every job of that name that was read.
        others: rows (name, count) of the queued jobs by name (read only when ``every`` is
            empty).

    Returns:
        The message.
    """
    expected = "exactly one" if one else "no"
    lines = [f"expected {expected} job {name!r} matching {filters}; found {len(found)}"]
    if found:
        lines.append("matching:")
        lines += [describe(j) for j in found[:SHOWN]]
    if every:
        lines.append(f"jobs {name!r} spawned ({len(every)}):")
        lines += [describe(j) for j in every[:SHOWN]]
        if len(every) > SHOWN:
            lines.append(f"  … and {len(every) - SHOWN} more")
    else:
        lines.append(f"no job {name!r} is queued")
        if others:
            shown = ", ".join(f"{n!r} ({c})" for n, c in others)
            lines.append(f"queued jobs by name: {shown}")
    return "\n".join(lines)
