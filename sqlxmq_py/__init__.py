"""sqlxmq_py: a job queue inside your own PostgreSQL database.

Jobs are rows in the application's database: spawned in its transactions, leased by runners with
``SKIP LOCKED``, and completed, if the job wants, in the same transaction as its own writes.
"""

from .backoff import retry_delay
from .builder import Checkpoint, JobBuilder
from .current_job import BlockingCurrentJob, CurrentJob, JobInfo
from .embedded import resolve_dsn
from .errors import (
    ConfigurationError,
    DuplicateJobError,
    EmbeddedServerError,
    JobTimeoutError,
    LeaseLostError,
    MigrationError,
    PayloadError,
    SchemaError,
    SqlxmqError,
    UnknownJobError,
)
from .job import JobOptions, NamedJob, job
from .migrate import migrate, migration_script
from .registry import ErrorHandler, JobRegistry
from .runner import JobRunnerHandle, JobRunnerOptions
from .spawn import clear, clear_all, commit, exists, spawn_many

__version__ = "0.1.0"

__all__ = [
    # declaring jobs
    "job",
    "NamedJob",
    "JobOptions",
    "JobRegistry",
    "ErrorHandler",
    # spawning and managing jobs
    "JobBuilder",
    "spawn_many",
    "commit",
    "clear",
    "clear_all",
    "exists",
    "migrate",
    "migration_script",
    "resolve_dsn",
    "retry_delay",
    # running jobs
    "JobRunnerOptions",
    "JobRunnerHandle",
    "CurrentJob",
    "BlockingCurrentJob",
    "JobInfo",
    "Checkpoint",
    # errors
    "SqlxmqError",
    "ConfigurationError",
    "DuplicateJobError",
    "PayloadError",
    "UnknownJobError",
    "LeaseLostError",
    "JobTimeoutError",
    "EmbeddedServerError",
    "SchemaError",
    "MigrationError",
]
