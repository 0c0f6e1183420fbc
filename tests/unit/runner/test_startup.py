"""What a runner decides about its connections from the pooler check: pure, no database."""

from __future__ import annotations

import pytest

from sqlxmq_py import JobRegistry
from sqlxmq_py._pooler import PoolerCheck
from sqlxmq_py.runner._config import RunnerConfig
from sqlxmq_py.runner._startup import plan_connections


def config(*, listen_dsn: str | None = None, prepared: bool | None = None) -> RunnerConfig:
    runner = JobRegistry([]).runner("postgresql://nowhere")
    return runner.set_listen_dsn(listen_dsn).set_prepared_statements(prepared).config()


def test_a_direct_connection_listens_and_prepares() -> None:
    plan = plan_connections(PoolerCheck(by_pid=False, by_port=False), config())
    assert (plan.pooled, plan.listen, plan.prepared) == (False, True, True)


def test_behind_a_transaction_pooler_it_neither_listens_nor_prepares() -> None:
    plan = plan_connections(PoolerCheck(by_pid=True, by_port=False), config())
    assert (plan.pooled, plan.listen, plan.prepared) == (True, False, False)


def test_a_proxy_seen_by_its_port_only_still_listens_but_does_not_prepare() -> None:
    plan = plan_connections(PoolerCheck(by_pid=False, by_port=True), config())
    assert (plan.pooled, plan.listen, plan.prepared) == (True, True, False)


def test_a_listen_dsn_makes_it_listen_behind_a_pooler() -> None:
    found = PoolerCheck(by_pid=True, by_port=True)
    plan = plan_connections(found, config(listen_dsn="postgresql://direct"))
    assert plan.listen


@pytest.mark.parametrize("prepared", [True, False])
def test_an_explicit_prepared_setting_wins(prepared: bool) -> None:
    for found in (PoolerCheck(by_pid=True, by_port=True), PoolerCheck(by_pid=False, by_port=False)):
        assert plan_connections(found, config(prepared=prepared)).prepared is prepared
