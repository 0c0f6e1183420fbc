"""The job runner: lease, run and complete jobs."""

from .handle import JobRunnerHandle
from .options import DEFAULT_LEASE, JobRunnerOptions

__all__ = ["DEFAULT_LEASE", "JobRunnerHandle", "JobRunnerOptions"]
