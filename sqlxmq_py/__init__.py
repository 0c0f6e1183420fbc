"""sqlxmq_py: a job queue inside your own PostgreSQL database.

Jobs are rows in the application's database: spawned in its transactions, leased by runners with
``SKIP LOCKED``, and completed, if the job wants, in the same transaction as its own writes.

The root namespace holds what declares, spawns and runs jobs, and the errors. The rest is
reached through its module: :mod:`sqlxmq_py.admin` (looking at and managing jobs),
:mod:`sqlxmq_py.results` (waiting for a job's result), :mod:`sqlxmq_py.pull` (consuming
without a runner), :mod:`sqlxmq_py.testing` (testing your own jobs), :mod:`sqlxmq_py.batch`.
"""

from ._version import __version__ as __version__
from .backoff import retry_delay
from .builder import Checkpoint, JobBuilder, JobKeyMode
from .cron import CronSchedule
from .current_job import BlockingCurrentJob, CurrentJob, JobInfo
from .embedded import resolve_dsn
from .errors import (
    ConfigurationError,
    DuplicateJobError,
    EmbeddedServerError,
    JobCancelledError,
    JobFailedError,
    JobNotFoundError,
    JobProcessDiedError,
    JobTimeoutError,
    LeaseLostError,
    MigrationError,
    PayloadError,
    RateLimitError,
    SchemaError,
    SqlxmqError,
    UnknownJobError,
)
from .job import JobOptions, NamedJob, job
from .migrate import migrate, migration_script
from .process_job import ProcessJob
from .registry import ErrorHandler, JobRegistry
from .runner import JobRunnerHandle, JobRunnerOptions
from .spawn import clear, clear_all, commit, exists, spawn_many, spawn_payloads
from .states import JobState

__all__ = [
    # declaring jobs
    "job",
    "NamedJob",
    "JobOptions",
    "JobRegistry",
    "ErrorHandler",
    "CronSchedule",
    # spawning jobs
    "JobBuilder",
    "JobKeyMode",
    "spawn_many",
    "spawn_payloads",
    "commit",
    "clear",
    "clear_all",
    "exists",
    "migrate",
    "migration_script",
    "resolve_dsn",
    "retry_delay",
    # the states of a job
    "JobState",
    # running jobs
    "JobRunnerOptions",
    "JobRunnerHandle",
    "CurrentJob",
    "BlockingCurrentJob",
    "ProcessJob",
    "JobInfo",
    "Checkpoint",
    # errors
    "SqlxmqError",
    "ConfigurationError",
    "DuplicateJobError",
    "PayloadError",
    "RateLimitError",
    "UnknownJobError",
    "LeaseLostError",
    "JobTimeoutError",
    "JobProcessDiedError",
    "JobNotFoundError",
    "JobFailedError",
    "JobCancelledError",
    "EmbeddedServerError",
    "SchemaError",
    "MigrationError",
]
