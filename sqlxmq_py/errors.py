"""Errors raised by sqlxmq_py.

Every error derives from :class:`SqlxmqError`. Errors raised by PostgreSQL on the caller's own
connection are psycopg errors and pass through unwrapped. The two errors of the bulk actions
live in ``sqlxmq_py.admin``, beside the functions that raise them.

::

    SqlxmqError
    ├── ConfigurationError (also ValueError)   an invalid option, caught when it is set
    │   ├── DuplicateJobError                   two jobs registered under one name
    │   ├── RateLimitError                      an invalid rate limit or rate key
    │   └── admin.EmptyFilterError              a bulk action's filter has no criterion
    ├── PayloadError (also ValueError)         a payload that cannot be encoded or decoded
    ├── UnknownJobError                         a job row names no registered job
    ├── LeaseLostError                          the job's lease passed to another worker
    ├── JobTimeoutError                         a job ran past its timeout
    ├── JobProcessDiedError                     a process-isolated job's worker process died
    ├── JobNotFoundError (also LookupError)     no such job is queued or kept in the history
    ├── JobFailedError                          a job waited for failed for good
    ├── JobCancelledError                       a job waited for was cancelled
    ├── EmbeddedServerError                     the embedded PostgreSQL is missing or failed
    ├── admin.ChainsWouldBeReleasedError        a bulk delete would run jobs of ordered chains
    └── SchemaError                             the database schema is missing or unusable
        └── MigrationError                      a migration could not be applied
"""

from __future__ import annotations

__all__ = [
    "ConfigurationError",
    "DuplicateJobError",
    "EmbeddedServerError",
    "JobCancelledError",
    "JobFailedError",
    "JobNotFoundError",
    "JobProcessDiedError",
    "JobTimeoutError",
    "LeaseLostError",
    "MigrationError",
    "PayloadError",
    "RateLimitError",
    "SchemaError",
    "SqlxmqError",
    "UnknownJobError",
]


class SqlxmqError(Exception):
    """Base class of every error raised by sqlxmq_py."""

    __module__ = "sqlxmq_py"


class ConfigurationError(SqlxmqError, ValueError):
    """An option has an invalid value; the message names the option and what it accepts."""

    __module__ = "sqlxmq_py"


class DuplicateJobError(ConfigurationError):
    """Two jobs were registered under the same name."""

    __module__ = "sqlxmq_py"


class RateLimitError(ConfigurationError):
    """A rate limit or a rate key is invalid: an empty or too long key, a ``*`` anywhere but
    at the end of a rule's pattern (or in a job's key), a number of starts below 1 or a period
    that is not positive."""

    __module__ = "sqlxmq_py"


class PayloadError(SqlxmqError, ValueError):
    """A job payload cannot be encoded (at spawn) or decoded (at run time)."""

    __module__ = "sqlxmq_py"


class UnknownJobError(SqlxmqError):
    """A leased job names no job in the runner's registry; the job is recorded as failed."""

    __module__ = "sqlxmq_py"


class LeaseLostError(SqlxmqError):
    """The job's lease expired and it may now run elsewhere; its completion was refused.

    Raised by ``complete``, ``checkpoint`` and ``keep_alive``. When it is raised inside your own
    transaction, roll that transaction back: another worker owns the job now.
    """

    __module__ = "sqlxmq_py"


class JobTimeoutError(SqlxmqError):
    """A job ran longer than its ``timeout`` and was stopped."""

    __module__ = "sqlxmq_py"


class JobProcessDiedError(SqlxmqError):
    """The worker process running a job declared with ``isolation="process"`` died before
    the job returned (a crash, a signal, the kernel's out-of-memory killer, ``os._exit``); the
    message says how it ended."""

    __module__ = "sqlxmq_py"


class JobNotFoundError(SqlxmqError, LookupError):
    """No job with this id is queued or kept in the history (it may have completed without
    ``retain_for``)."""

    __module__ = "sqlxmq_py"


class JobFailedError(SqlxmqError):
    """The job waited for failed for good; the message carries its last error."""

    __module__ = "sqlxmq_py"


class JobCancelledError(SqlxmqError):
    """The job waited for was cancelled; the message carries the reason."""

    __module__ = "sqlxmq_py"


class EmbeddedServerError(SqlxmqError):
    """The embedded PostgreSQL server is not installed or could not start."""

    __module__ = "sqlxmq_py"


class SchemaError(SqlxmqError):
    """The database does not have a usable sqlxmq_py schema."""

    __module__ = "sqlxmq_py"


class MigrationError(SchemaError):
    """A migration could not be applied, or an applied migration file has changed."""

    __module__ = "sqlxmq_py"
