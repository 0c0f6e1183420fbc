"""The SQL that sqlxmq_py sends, loaded by name from ``queries.sql``.

Keeping every statement in one file makes the database work reviewable in one place and keeps
SQL out of f-strings: parameters are always bound by psycopg.
"""

from __future__ import annotations

import re
from importlib import resources
from typing import Literal, get_args

__all__ = ["QueryName", "query"]

QueryName = Literal[
    "migrations_lock",
    "migrations_create_table",
    "migrations_table_exists",
    "migrations_applied",
    "migrations_record",
    "insert",
    "insert_one",
    "insert_plain",
    "copy_payloads",
    "copy_jobs",
    "wake",
    "commit",
    "exists",
    "clear",
    "clear_all",
    "lease",
    "lease_limited",
    "fetch_lease",
    "promote",
    "complete",
    "fail",
    "renew",
    "release",
    "park",
    "unpark",
    "keep_alive",
    "checkpoint",
    "maintain",
    "expire_leases",
    "repair",
    "listener_upsert",
    "listener_delete",
    "status",
    "attempt_errors",
    "payload_json",
    "wait_register",
    "list_jobs",
    "queue_counts",
    "cancel",
    "retry",
    "reschedule",
    "blocked_chains",
    "purge",
    "purge_chains",
    "set_channel",
    "channel_limits",
    "list_channels",
    "channel_info",
    "schedule_upsert",
    "schedules",
    "schedule_delete",
    "schedule",
    "schedule_enable",
    "schedule_disable",
    "workers",
    "schedule_advance",
    "listen_done",
    "unlisten_done",
    "stats_add",
    "stats",
    "set_statement_timeout",
    "web_job_details",
    "web_job_worker",
    "web_job_chain",
    "web_job_parents",
    "web_job_children",
    "completion_check",
    "ping",
    "list_jobs_by_state",
    "list_jobs_by_channel",
    "list_jobs_by_name",
    "list_jobs_by_key",
    "queue_counts_estimated",
    "web_channel_names",
    "schema_objects",
    "batch_link",
    "batch_seal",
    "batch_status",
    "batch_members",
    "batch_cancel",
    "bulk_count",
    "bulk_batch",
    "bulk_delete_history",
    "bulk_chains",
    "run_now",
    "workflow_link",
    "workflow_status",
    "workflow_cancel",
    "workflow_retry",
    "workflow_parent_results",
    "workflow_list",
    "workflow_skip_self",
    "insert_rated",
    "runner_lease",
    "rate_limit_set",
    "rate_limit_delete",
    "rate_limits",
    "rate_prune",
    "rate_windows_busiest",
    "web_job_workflow_step",
    "web_workflow_rate_waits",
]

_NAME_LINE = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


def parse_queries(text: str) -> dict[str, bytes]:
    """Split a queries file into ``{name: statement}``; comment lines are kept out of the SQL."""
    parts = _NAME_LINE.split(text)
    queries: dict[str, bytes] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        lines = [line for line in body.strip().splitlines() if not line.lstrip().startswith("--")]
        if name in queries:
            raise ValueError(f"queries.sql defines {name!r} twice")
        queries[name] = "\n".join(lines).strip().encode()
    return queries


def _load() -> dict[str, bytes]:
    text = resources.files(__package__).joinpath("queries.sql").read_text(encoding="utf-8")
    queries = parse_queries(text)
    expected = set(get_args(QueryName))
    if set(queries) != expected:
        raise RuntimeError(
            f"queries.sql and QueryName disagree: only in file {sorted(set(queries) - expected)}, "
            f"only in QueryName {sorted(expected - set(queries))}"
        )
    return queries


_QUERIES = _load()


def query(name: QueryName) -> bytes:
    """The statement called ``name`` in ``queries.sql``, ready for ``cursor.execute``."""
    return _QUERIES[name]
