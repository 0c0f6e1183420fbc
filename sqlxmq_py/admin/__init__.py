"""Looking at and managing jobs: status, listing, counts, cancel, retry, reschedule, bulk
actions on every job matching a filter (retry, cancel, delete, run now), blocked
ordered chains, purging, channels (pause, resume, concurrency limits), the live runners
(workers) and rate limits per key.

Like spawning, every function takes a sync connection or pool (and returns its result) or an
async one (and returns an awaitable), and runs in the caller's transaction without committing it.
"""

from ..states import JobState
from ._actions import cancel, reschedule, retry
from ._bulk import (
    ACTION_STATES,
    BulkAction,
    ChainsWouldBeReleasedError,
    EmptyFilterError,
    JobFilter,
    cancel_matching,
    chains_released,
    count_matching,
    delete_matching,
    retry_matching,
    run_now,
)
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
from ._rate_limits import (
    BUSIEST_KEYS,
    RateKeyWindow,
    busiest_rate_keys,
    list_rate_limits,
    remove_rate_limit,
    set_rate_limit,
)
from ._schedules import (
    Schedule,
    delete_schedule,
    disable_schedule,
    enable_schedule,
    list_schedules,
    trigger_schedule,
)
from ._status import AttemptError, Interruptions, JobStatus, RateWait, attempt_errors, job_status
from ._workers import STALE_AFTER, WorkerInfo, list_workers
from ._workflows import (
    WorkflowCancelled,
    cancel_workflow,
    list_workflows,
    retry_step,
    workflow_status,
)

__all__ = [
    "ACTION_STATES",
    "BUSIEST_KEYS",
    "ESTIMATE_ABOVE",
    "STALE_AFTER",
    "AttemptError",
    "BlockedChain",
    "BulkAction",
    "ChainsWouldBeReleasedError",
    "ChannelInfo",
    "EmptyFilterError",
    "Interruptions",
    "JobFilter",
    "JobState",
    "JobStatus",
    "PurgeResult",
    "QueueCount",
    "RateKeyWindow",
    "RateWait",
    "Schedule",
    "StatsBucket",
    "WorkerInfo",
    # workflows
    "WorkflowCancelled",
    "attempt_errors",
    "blocked_chains",
    "busiest_rate_keys",
    "cancel",
    "cancel_matching",
    "cancel_workflow",
    "chains_released",
    "channel_info",
    "channel_limits",
    "count_matching",
    "delete_matching",
    "delete_schedule",
    "disable_schedule",
    "enable_schedule",
    "job_status",
    "list_channels",
    "list_jobs",
    "list_rate_limits",
    "list_schedules",
    "list_workers",
    "list_workflows",
    "pause_channel",
    "paused_channels",
    "purge",
    "queue_counts",
    "remove_rate_limit",
    "reschedule",
    "resume_channel",
    "retry",
    "retry_matching",
    "retry_step",
    "run_now",
    "set_channel_limit",
    "set_rate_limit",
    "throughput",
    "trigger_schedule",
    "workflow_status",
]
