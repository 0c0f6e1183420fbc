"""The demo (the README's first command) runs its tour and reports one failed job."""

from __future__ import annotations

import io

from sqlxmq_py.demo import run_demo


async def test_demo_runs_every_kind_of_job(dsn: str) -> None:
    out = io.StringIO()
    failed = await run_demo(dsn, count=100, out=out)
    text = out.getvalue()
    assert failed == 1
    assert "ledger entries ran in spawn order: yes" in text
    assert "failed for good: flaky_export after 2 attempts" in text
    assert "101/101 finished, 1 failed" in text
