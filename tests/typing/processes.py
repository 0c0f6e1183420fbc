"""Process-isolated jobs as the type checker sees them: checked by ``mypy --strict`` in CI.
Never executed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import assert_type

from sqlxmq_py import JobBuilder, JobRegistry, ProcessJob, job


@dataclass(frozen=True)
class Frame:
    width: int
    height: int


@job(isolation="process", timeout=60)
def render(current_job: ProcessJob[Frame]) -> int:
    assert_type(current_job.payload, Frame)
    assert_type(current_job.attempt, int)
    return current_job.payload.width * current_job.payload.height


assert_type(render.builder(), JobBuilder[Frame])
render.builder().set_json(Frame(640, 480))
render.builder().set_json({"width": 1})  # type: ignore[arg-type]  # the declared type only


def configure(registry: JobRegistry) -> None:
    registry.runner(None).set_processes(4, max_jobs_per_process=100, max_memory_mb=512)
    registry.runner(None).set_processes(None)
