"""``sqlxmq workflow``, ``workflow-retry`` and ``workflow-cancel``, run as the real console
program: the graph as text with each step's state, and the actions' refusals."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import psycopg
import pytest

from sqlxmq_py.workflow import Workflow

from ..cli.conftest import Cli, run_cli
from ._util import on, settle


@pytest.fixture
def cli(dsn: str) -> Cli:
    """``cli(args...)`` runs ``sqlxmq --dsn <test db> args...``."""

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cli("--dsn", dsn, *args)

    return run


def test_the_graph_with_each_steps_state(cli: Cli, conn: psycopg.Connection[Any]) -> None:
    wf = Workflow("etl")
    wf.add("extract", on("extract"))
    wf.add("t1", on("t1"), after=["extract"])
    wf.add("t2", on("t2"), after=["extract"])
    wf.add("load", on("load"), after=["t1", "t2"], on_parent_failure="skip")
    spawned = wf.spawn(conn)
    conn.commit()
    settle(conn, "extract", result={"rows": 3})
    settle(conn, "t1", "fail")
    result = cli("workflow", str(spawned.id))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"Workflow {spawned.id} (etl): running, 4 steps, created ")
    assert [line.split()[:2] for line in lines[1:]] == [
        ["STEP", "STATE"],
        ["extract", "completed"],
        ["t1", "failed"],
        ["t2", "ready"],
        ["load", "skipped"],
    ]
    # indented by depth, parents and the error or result beside
    assert lines[3].startswith("  t1 ")
    assert lines[5].startswith("    load ")
    assert "t1 broke" in lines[3]
    assert "{'rows': 3}" in lines[2]
    assert lines[5].split()[-6:] == ["t1,", "t2", "parent", "step", "t1", "failed"]
    shown = json.loads(cli("--json", "workflow", str(spawned.id)).stdout)
    assert shown["state"] == "running"
    assert [s["display"] for s in shown["workflow"]["steps"]] == [
        "completed",
        "failed",
        "ready",
        "skipped",
    ]

    retried = cli("workflow-retry", str(spawned.id), "t1")
    assert retried.returncode == 0, retried.stderr
    assert retried.stdout == f"retrying step t1 (job {spawned.step_ids['t1']})\n"
    again = cli("workflow-retry", str(spawned.id), "t1")
    assert again.returncode == 1
    assert "cannot be retried: it is pending" in again.stderr
    unknown = cli("workflow-retry", str(spawned.id), "nope")
    assert unknown.returncode != 0
    assert "has no step named nope" in unknown.stderr

    cancelled = cli("workflow-cancel", str(spawned.id))
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout == (
        f"cancelled workflow {spawned.id}: 3 steps cancelled, 0 running steps asked to stop\n"
    )
    assert "cancelled, 4 steps" in cli("workflow", str(spawned.id)).stdout


def test_an_unknown_workflow(cli: Cli) -> None:
    result = cli("workflow", "0192f5d2-7c1e-7a41-9b6e-3c0d1f2a4b5c")
    assert result.returncode == 1
    assert "no workflow 0192f5d2-7c1e-7a41-9b6e-3c0d1f2a4b5c" in result.stderr
    bad = cli("workflow", "not-a-uuid")
    assert bad.returncode == 2
    assert "invalid workflow id 'not-a-uuid'" in bad.stderr


def test_the_list_newest_first_with_counts(cli: Cli, conn: psycopg.Connection[Any]) -> None:
    assert cli("workflows").stdout == "No workflows.\n"
    ids = []
    for name in ("first", "second", "second"):
        wf = Workflow(name)
        wf.add("a", on("a"))
        wf.add("b", on("b"), after=["a"])
        ids.append(wf.spawn(conn).id)
        conn.commit()
    result = cli("workflows")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "ID", "NAME", "STATE", "STEPS", "WAITING", "RELEASED", "COMPLETED", "FAILED",
        "CANCELLED", "SKIPPED", "CREATED",
    ]  # fmt: skip
    assert [line.split()[:10] for line in lines[1:]] == [
        [str(i), name, "running", "2", "1", "1", "0", "0", "0", "0"]
        for i, name in zip(reversed(ids), ("second", "second", "first"), strict=True)
    ]
    only = json.loads(cli("--json", "workflows", "--name", "first").stdout)["workflows"]
    assert [(w["id"], w["state"], w["total"]) for w in only] == [(str(ids[0]), "running", 2)]
    assert len(cli("workflows", "--limit", "1").stdout.splitlines()) == 2
