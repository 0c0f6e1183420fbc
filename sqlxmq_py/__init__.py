"""sqlxmq_py: a job queue inside your own PostgreSQL database.

Jobs are rows in the application's database: spawned in its transactions, leased by runners with
``SKIP LOCKED``, and completed, if the job wants, in the same transaction as its own writes.
"""

from .admin import (
    BlockedChain,
    JobState,
    JobStatus,
    PurgeResult,
    QueueCount,
    Schedule,
    StatsBucket,
    blocked_chains,
    cancel,
    channel_limits,
    delete_schedule,
    job_status,
    list_jobs,
    list_schedules,
    purge,
    queue_counts,
    reschedule,
    retry,
    set_channel_limit,
    throughput,
)
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
from .pull import FetchedJob, complete, fail, fetch
from .registry import ErrorHandler, JobRegistry
from .results import wait_for_result
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
    "CronSchedule",
    # spawning jobs
    "JobBuilder",
    "JobKeyMode",
    "spawn_many",
    "commit",
    "clear",
    "clear_all",
    "exists",
    "migrate",
    "migration_script",
    "resolve_dsn",
    "retry_delay",
    # looking at and managing jobs
    "JobState",
    "JobStatus",
    "job_status",
    "wait_for_result",
    "list_jobs",
    "QueueCount",
    "queue_counts",
    "cancel",
    "retry",
    "reschedule",
    "BlockedChain",
    "blocked_chains",
    "PurgeResult",
    "purge",
    "set_channel_limit",
    "channel_limits",
    "StatsBucket",
    "throughput",
    "Schedule",
    "list_schedules",
    "delete_schedule",
    # consuming without a runner
    "FetchedJob",
    "fetch",
    "complete",
    "fail",
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
    "JobNotFoundError",
    "JobFailedError",
    "JobCancelledError",
    "EmbeddedServerError",
    "SchemaError",
    "MigrationError",
]
