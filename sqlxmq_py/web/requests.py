"""What the HTTP API accepts: request bodies and query parameters as typed models. The models
validate each request and are the OpenAPI document's schemas."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)

from ..errors import RateLimitError
from ..rate_limit import MAX_RATE_KEY_BYTES, MAX_RATE_KEYS, check_rate_key
from ..states import JOB_STATES
from .fields import (
    BASE64_PATTERN,
    MAX_LIST_LIMIT,
    MAX_RESULT_TIMEOUT_S,
    MAX_THROUGHPUT_MINUTES,
    Ids,
    Integer,
    JobId,
    Model,
    PositiveSeconds,
    QueryDigits,
    RunAt,
    Seconds,
    Text,
)

__all__ = [
    "STATES",
    "CancelJobsRequest",
    "CancelRequest",
    "ChannelLimitRequest",
    "ChannelRequest",
    "EmptyRequest",
    "JobListQuery",
    "PurgeRequest",
    "RetryJobsRequest",
    "SpawnRequest",
    "StateName",
    "ThroughputQuery",
    "WaitRequest",
]


def _rate_key(value: str) -> str:
    try:
        return check_rate_key(value)
    except RateLimitError as exc:
        raise ValueError(f"{value[:80]!r} is not a valid rate key: {exc}") from None


RateKey = Annotated[
    str,
    AfterValidator(_rate_key),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_RATE_KEY_BYTES,
            "pattern": "^[^\\u0000*]+$",
            "description": f"A rate key: at most {MAX_RATE_KEY_BYTES} bytes of UTF-8, no '*' "
            "(only rules use it).",
        }
    ),
]
"""A job's rate key, checked as the builder checks it; a refusal names the key."""

STATES: tuple[str, ...] = tuple(str(state) for state in JOB_STATES)
"""Every state a job can be in, in the order the pages list them."""


def _known_state(value: str) -> str:
    if value not in STATES:
        raise ValueError(f"unknown state {value[:40]!r}; the states are: {', '.join(STATES)}")
    return value


StateName = Annotated[
    str,
    AfterValidator(_known_state),
    WithJsonSchema(
        {
            "enum": list(STATES),
            "description": "scheduled and retrying both wait for a time; waiting jobs wait "
            "for an earlier job of their ordered chain or for parent jobs; completed and "
            "cancelled jobs are kept history.",
        }
    ),
]
"""A job's state, by name."""

_PRIORITY = 2**31 - 1


class SpawnRequest(Model):
    """A job to spawn. Leave a field out (or send null) for its default."""

    # beside the fields: delay and run_at exclude each other, throttle needs job_key
    model_config = ConfigDict(
        json_schema_extra={
            "not": {
                "required": ["delay", "run_at"],
                "properties": {"delay": {"type": "number"}, "run_at": {"type": "string"}},
            },
            "if": {"required": ["throttle"], "properties": {"throttle": {"type": "number"}}},
            "then": {"required": ["job_key"], "properties": {"job_key": {"type": "string"}}},
        }
    )

    name: Text = Field(description="The registered name of the job to run.")
    id: JobId | None = Field(
        None,
        description="Use this id instead of a new one: a retried request then answers 409 "
        "instead of spawning twice (while the first job is queued).",
    )
    payload: Any = Field(
        None,
        description="The JSON payload: any JSON value (null included). Leave the field out "
        "for a job without a JSON payload.",
    )
    payload_base64: Annotated[str, Field(pattern=BASE64_PATTERN)] | None = Field(
        None,
        description="A binary payload, base64-encoded (standard alphabet, padded).",
        json_schema_extra={"contentEncoding": "base64"},
    )
    channel_name: Text | None = Field(None, description='The channel (default: "").')
    channel_args: Text | None = Field(
        None,
        description='The channel arguments (default: ""): the group within the channel, for '
        "fairness and ordering.",
    )
    delay: Seconds | None = Field(
        None, description="Run no earlier than this many seconds from now (database clock)."
    )
    run_at: RunAt | None = Field(
        None,
        description="Run no earlier than this time: RFC 3339 with an offset, in the years 1970 "
        "to 8998. Not together with delay.",
    )
    priority: Annotated[int, Field(ge=-_PRIORITY, le=_PRIORITY), Integer] | None = Field(
        None, description="Higher runs first within the channel group (default 0)."
    )
    retries: Annotated[int, Field(ge=0, le=_PRIORITY - 1), Integer] | None = Field(
        None, description="Retries after a failed first attempt (default 4)."
    )
    retry_backoff: Seconds | None = Field(
        None, description="Wait before the first retry, doubled each retry (default 1)."
    )
    lease: PositiveSeconds | None = Field(
        None, description="Lease length in seconds (default: the runner's)."
    )
    ordered: bool | None = Field(
        None, description="Run strictly after the earlier ordered jobs of its channel group."
    )
    job_key: Text | None = Field(None, description="A key unique among unfinished jobs.")
    job_key_mode: Literal["replace", "preserve_run_at", "unsafe_dedupe"] | None = Field(
        None, description="What spawning does when a waiting job has the key (default replace)."
    )
    throttle: PositiveSeconds | None = Field(
        None,
        description="At most one job per key per window of this many seconds; needs job_key.",
    )
    retain_for: Seconds | None = Field(
        None, description="Keep the finished job and its result for this many seconds."
    )
    after: Ids | None = Field(
        None, description="Run only after these jobs completed (a continuation)."
    )
    run_after_failed_parents: bool | None = Field(
        None, description="Run even if a parent failed or was cancelled."
    )
    # patternProperties alone leave keys outside the pattern (a NUL) schema-valid: refuse them
    headers: (
        Annotated[
            dict[Text, Text],
            Field(max_length=100, json_schema_extra={"additionalProperties": False}),
        ]
        | None
    ) = Field(None, description="String headers carried to the job (current_job.headers).")
    dead_letter: Text | None = Field(
        None, description="When the job fails for good, spawn this job with the error and payload."
    )
    rate_keys: Annotated[list[RateKey], Field(max_length=MAX_RATE_KEYS)] | None = Field(
        None,
        description="Rate keys: the job starts only when every rule naming one of them allows "
        "it (see PUT /rate-limits/{pattern}); a key without a rule is not limited.",
    )

    @field_validator("run_at")
    @classmethod
    def _not_with_delay(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        if value is not None and info.data.get("delay") is not None:
            raise ValueError("give delay or run_at, not both")
        return value

    @field_validator("throttle")
    @classmethod
    def _needs_a_key(cls, value: float | None, info: ValidationInfo) -> float | None:
        if value is not None and info.data.get("job_key") is None:
            raise ValueError("throttle needs a job_key: the window is per key")
        return value


class WaitRequest(Model):
    """How long to wait for a job's result."""

    timeout: Annotated[float, Field(ge=0, le=MAX_RESULT_TIMEOUT_S, allow_inf_nan=False)] | None = (
        Field(
            None,
            description="Seconds to wait for the job to end (default 0: do not wait, only "
            "register).",
        )
    )


class CancelRequest(Model):
    """Why a job is cancelled."""

    reason: Text | None = Field(
        None, description="Recorded as the job's last error (default 'cancelled')."
    )


class EmptyRequest(Model):
    """An action without options (an empty object, or no body)."""


class CancelJobsRequest(Model):
    """Jobs to cancel."""

    ids: Ids = Field(description="The jobs' ids.")
    reason: Text | None = Field(None, description="Recorded as the jobs' last error.")


class RetryJobsRequest(Model):
    """Failed jobs to run again."""

    ids: Ids = Field(description="The jobs' ids.")


class PurgeRequest(Model):
    """What to remove besides expired history."""

    failed_older_than_s: Seconds | None = Field(
        None,
        description="Remove failed jobs that failed more than this many seconds ago (null: keep "
        "failed jobs).",
    )
    history_older_than_s: Seconds | None = Field(
        None,
        description="Remove kept jobs that finished more than this many seconds ago (expired "
        "history is always removed).",
    )
    release_chains: bool = Field(
        False,
        description="Remove the failed head of an ordered chain too, which runs the jobs "
        "waiting behind it (without it, such heads are kept and listed in chains_kept).",
    )


class ChannelRequest(Model):
    """The channel to pause or resume."""

    channel_name: Text = Field(description='The channel ("" is the default channel).')


class ChannelLimitRequest(Model):
    """A channel's concurrency limit."""

    channel_name: Text = Field(description='The channel ("" is the default channel).')
    max_running: Annotated[int, Field(ge=0, le=_PRIORITY), Integer] | None = Field(
        description="The most jobs of the channel that may run at once across all runners; "
        "null removes the limit (a pause stays), 0 holds the channel like a pause."
    )


class JobListQuery(Model):
    """The filters of a job list, as query parameters."""

    state: list[StateName] | None = Field(
        None, description="Only jobs in these states (repeat the parameter)."
    )
    channel_name: Text | None = Field(None, description="Only this channel.")
    name: Text | None = Field(None, description="Only jobs of this name.")
    job_key: Text | None = Field(None, description="Only this key.")
    limit: Annotated[int, Field(ge=1, le=MAX_LIST_LIMIT), QueryDigits] = Field(
        50, description="Page size."
    )
    before: JobId | None = Field(
        None, description="Jobs older than this one: the next_before of the previous page."
    )


class ThroughputQuery(Model):
    """Which counts of finished attempts, as query parameters."""

    minutes: Annotated[int, Field(ge=1, le=MAX_THROUGHPUT_MINUTES), QueryDigits] = Field(
        60, description="How many minutes back, this minute included."
    )
    channel_name: Text | None = Field(None, description="Only this channel.")
