"""Looking at and managing jobs: status, listing, counts, cancel, retry, reschedule, blocked
ordered chains, purging, channels (pause, resume, concurrency limits) and the live runners
(workers).

Like spawning, every function takes a sync connection or pool (and returns its result) or an
async one (and returns an awaitable), and runs in the caller's transaction without committing it.
"""

from ..states import JobState
from ._actions import cancel, reschedule, retry
from ._channels import (
    ChannelInfo,
    channel_info,
    channel_limits,
    list_channels,
    pause_channel,
    paused_channels,
    resume_channel,
    set_channel_limit,
)
from ._counts import (
    ESTIMATE_ABOVE,
    BlockedChain,
    QueueCount,
    StatsBucket,
    blocked_chains,
    queue_counts,
    throughput,
)

# reached as sqlxmq_py.admin.<name> as before the split, though not star-exported
from ._counts import ESTIMATE_RUNNING_ABOVE as ESTIMATE_RUNNING_ABOVE
from ._counts import ESTIMATE_SAMPLE_ROWS as ESTIMATE_SAMPLE_ROWS
from ._lists import list_jobs
from ._lists import list_statement as list_statement
from ._purge import PurgeResult, purge
from ._schedules import Schedule, delete_schedule, list_schedules
from ._status import AttemptError, Interruptions, JobStatus, attempt_errors, job_status
from ._workers import STALE_AFTER, WorkerInfo, list_workers

__all__ = [
    "ESTIMATE_ABOVE",
    "STALE_AFTER",
    "AttemptError",
    "BlockedChain",
    "ChannelInfo",
    "Interruptions",
    "JobState",
    "JobStatus",
    "PurgeResult",
    "QueueCount",
    "Schedule",
    "StatsBucket",
    "WorkerInfo",
    "attempt_errors",
    "blocked_chains",
    "cancel",
    "channel_info",
    "channel_limits",
    "delete_schedule",
    "job_status",
    "list_channels",
    "list_jobs",
    "list_schedules",
    "list_workers",
    "pause_channel",
    "paused_channels",
    "purge",
    "queue_counts",
    "reschedule",
    "resume_channel",
    "retry",
    "set_channel_limit",
    "throughput",
]
