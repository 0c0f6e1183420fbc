"""Logging, metrics and tracing pieces that need no database."""

from __future__ import annotations

import importlib
import logging
import sys

import pytest
import structlog
from prometheus_client import CollectorRegistry

from sqlxmq_py.metrics import PrometheusHooks


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    found = registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


@pytest.mark.parametrize("level", [logging.INFO, logging.WARNING])
def test_disabled_levels_are_not_formatted(level: int) -> None:
    """A per-job line costs one level check when DEBUG is off: its keys are never formatted."""
    from sqlxmq_py._logging import Logger

    if structlog.is_configured():  # pragma: no cover
        structlog.reset_defaults()

    class Loud:
        def __repr__(self) -> str:
            raise AssertionError("formatted although disabled")

    logging.getLogger("sqlxmq_py.test").setLevel(level)
    try:
        Logger("sqlxmq_py.test").debug("job_completed", value=Loud())
    finally:
        logging.getLogger("sqlxmq_py.test").setLevel(logging.NOTSET)


def test_hooks_on_one_registry_share_its_metrics() -> None:
    registry = CollectorRegistry()
    first, second = PrometheusHooks(registry), PrometheusHooks(registry)
    first.polled(2, 4)
    second.polled(1, 4)
    assert value(registry, "sqlxmq_runner_jobs_leased_total") == 3
    assert value(registry, "sqlxmq_runner_polls_total") == 2


def test_import_without_prometheus_client_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    monkeypatch.delitem(sys.modules, "sqlxmq_py.metrics", raising=False)
    with pytest.raises(ImportError, match=r"pip install 'sqlxmq_py\[metrics\]'"):
        importlib.import_module("sqlxmq_py.metrics")


def test_import_without_opentelemetry_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    monkeypatch.delitem(sys.modules, "sqlxmq_py.tracing", raising=False)
    with pytest.raises(ImportError, match=r"pip install 'sqlxmq_py\[otel\]'"):
        importlib.import_module("sqlxmq_py.tracing")
