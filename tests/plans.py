"""The plans PostgreSQL makes for the statements inside sqlxmq_py's SQL functions.

A function's ``RETURN QUERY`` statement is prepared as PL/pgSQL prepares it (its parameters
typed as the function's arguments) under the function's own settings (its ``SET`` clauses, such
as ``plan_cache_mode = force_generic_plan``), then run with EXPLAIN ANALYZE in a transaction
that is rolled back.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

import psycopg
from psycopg import sql

__all__ = ["function_plan", "plan_nodes"]


def function_plan(
    db: psycopg.Connection[Any],
    function: str,
    params: Mapping[str, object],
    query: int = 0,
    variables: Mapping[str, object] | None = None,
) -> str:
    """The JSON plan of the ``query``-th ``RETURN QUERY`` statement of ``function``, run with
    ``params`` (named as the function's arguments without their ``p_`` prefix) and the
    function's local ``variables`` (by name) as literals."""
    row = db.execute(
        "SELECT p.prosrc, p.proconfig, p.proargnames,"
        " ARRAY(SELECT format_type(t, NULL) FROM unnest(p.proargtypes) AS t)"
        " FROM pg_proc AS p WHERE p.proname = %s",
        (function,),
    ).fetchone()
    assert row is not None, f"no function {function}"
    source, config, names, types = row
    statements = re.findall(r"RETURN QUERY\s+(.*?);\s*\n", source, re.S)
    body = statements[query]
    arguments = list(names[: len(types)])
    for position, name in enumerate(arguments, 1):
        body = re.sub(rf"\b{name}\b", f"${position}", body)
    for name, value in (variables or {}).items():
        body = re.sub(rf"\b{name}\b", sql.Literal(value).as_string(db), body)
    values = [params[name.removeprefix("p_")] for name in arguments]
    with db.transaction(force_rollback=True):
        for setting in config or ():
            key, _, value = setting.partition("=")
            db.execute("SELECT set_config(%s, %s, true)", (key, value))
        typed = sql.SQL(" ({})").format(sql.SQL(", ").join(sql.SQL(t) for t in types))
        db.execute(
            sql.SQL("PREPARE sqlxmq_plan{} AS {}").format(
                typed if types else sql.SQL(""), sql.SQL(body)
            )
        )
        given = sql.SQL(" ({})").format(sql.SQL(", ").join(sql.Literal(v) for v in values))
        try:
            plan = db.execute(
                sql.SQL("EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE sqlxmq_plan{}").format(
                    given if values else sql.SQL("")
                )
            ).fetchone()
        finally:
            db.execute("DEALLOCATE sqlxmq_plan")
    assert plan is not None
    document = plan[0] if isinstance(plan[0], list) else json.loads(plan[0])
    return json.dumps(document)


def plan_nodes(plan: str) -> Iterator[dict[str, Any]]:
    """Every node of a JSON plan."""
    stack: list[Any] = [json.loads(plan)[0]["Plan"]]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(node.get("Plans", ()))
