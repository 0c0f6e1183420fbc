"""A kit for testing your own jobs.

- ``pytest`` fixtures (the ``sqlxmq`` plugin, installed with the package): ``sqlxmq_dsn``, a
  fresh migrated database per test (cloned from a template migrated once per session, with
  your own schema if you override ``sqlxmq_setup_database``), and ``sqlxmq_conn`` /
  ``sqlxmq_aconn``, connections to it inside a transaction rolled back after the test.
- :func:`spawned`, :func:`assert_spawned`, :func:`refute_spawned`: what was spawned, read in
  the test's transaction, payloads decoded with the job's declared type.
- :func:`drain` (async) and :func:`run_pending` (sync): run the due jobs in process, through
  the runner's own attempt code and statements, in the test's transaction.
- :func:`perform` and :func:`perform_sync`: call one job function with a real ``CurrentJob``
  built for the test, its ``complete()``, ``checkpoint()`` and ``keep_alive()`` recorded.

See "Testing your jobs" in the README.
"""

from .engine import Deferred, Drained, Ran, drain, run_pending
from .inspect import SpawnedJob, SpawnFilters, assert_spawned, refute_spawned, spawned
from .perform import Performed, PerformOptions, perform, perform_sync
from .recorded import Completion, RecordedCheckpoint

__all__ = [
    "Completion",
    "Deferred",
    "Drained",
    "PerformOptions",
    "Performed",
    "Ran",
    "RecordedCheckpoint",
    "SpawnFilters",
    "SpawnedJob",
    "assert_spawned",
    "drain",
    "perform",
    "perform_sync",
    "refute_spawned",
    "run_pending",
    "spawned",
]
