"""The OpenAPI 3.1 document of the HTTP API, written by hand to match ``api.py`` exactly (the
schemathesis tests hold the two together), and the limits that both use."""

from __future__ import annotations

import copy
from typing import Any

from .. import __version__

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_IDS",
    "MAX_LIST_LIMIT",
    "MAX_RESULT_TIMEOUT_S",
    "MAX_SECONDS",
    "MAX_THROUGHPUT_MINUTES",
    "MIN_POSITIVE_SECONDS",
    "RUN_AT_YEARS",
    "SPAWN_FIELDS",
    "openapi_document",
]

MAX_BODY_BYTES = 16 * 1024 * 1024
"""Largest request body accepted (413 above)."""
MAX_IDS = 1000
"""Most job ids in one request."""
MAX_LIST_LIMIT = 1000
"""Largest page of ``GET /api/jobs``."""
MAX_RESULT_TIMEOUT_S = 60.0
"""Longest wait of ``GET /api/jobs/{id}/result``."""
MAX_SECONDS = 100 * 365 * 86400
"""Longest duration option (100 years), so that run times stay within PostgreSQL's range."""
MIN_POSITIVE_SECONDS = 0.001
"""Shortest lease or throttle window."""
MAX_THROUGHPUT_MINUTES = 7 * 24 * 60
"""Runners keep per-minute counts for seven days."""
RUN_AT_YEARS = (1970, 8998)
"""``run_at`` must fall in these years (inclusive): the schema keeps run times before 9000."""

_RUN_AT_YEAR_PATTERN = "^(19[7-9][0-9]|[2-7][0-9]{3}|8[0-8][0-9]{2}|89[0-8][0-9]|899[0-8])-"
_NO_NUL = "^[^\\u0000]*$"
_UUID_PATTERN = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
_BASE64 = "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
_STATES = [
    "uncommitted",
    "scheduled",
    "waiting",
    "ready",
    "running",
    "retrying",
    "failed",
    "completed",
    "cancelled",
]
_ERROR_CODES = [
    "bad_request",
    "unauthorized",
    "forbidden",
    "not_found",
    "method_not_allowed",
    "conflict",
    "job_failed",
    "job_cancelled",
    "payload_too_large",
    "unsupported_media_type",
    "unavailable",
    "internal_error",
]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _text(description: str, *, nullable: bool = False) -> dict[str, Any]:
    return {
        "type": ["string", "null"] if nullable else "string",
        "pattern": _NO_NUL,
        "description": description,
    }


def _uuid(description: str, *, nullable: bool = False) -> dict[str, Any]:
    return {
        "type": ["string", "null"] if nullable else "string",
        "format": "uuid",
        "pattern": _UUID_PATTERN,
        "description": description,
    }


def _seconds(description: str, *, positive: bool = False) -> dict[str, Any]:
    return {
        "type": ["number", "null"],
        "minimum": MIN_POSITIVE_SECONDS if positive else 0,
        "maximum": MAX_SECONDS,
        "description": description,
    }


def _object(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        "additionalProperties": False,
    }


def _date_time(description: str, *, nullable: bool = False) -> dict[str, Any]:
    return {
        "type": ["string", "null"] if nullable else "string",
        "format": "date-time",
        "description": description,
    }


_SPAWN_PROPERTIES: dict[str, Any] = {
    "name": _text("The registered name of the job to run."),
    "id": _uuid(
        "Use this id instead of a new one: a retried request then answers 409 instead of "
        "spawning twice (while the first job is queued).",
        nullable=True,
    ),
    "payload": {
        "description": "The JSON payload: any JSON value (null included). Leave the field out "
        "for a job without a JSON payload."
    },
    "payload_base64": {
        "type": ["string", "null"],
        "pattern": _BASE64,
        "contentEncoding": "base64",
        "description": "A binary payload, base64-encoded (standard alphabet, padded).",
    },
    "channel_name": _text('The channel (default: "").', nullable=True),
    "channel_args": _text(
        'The channel arguments (default: ""): the group within the channel, for fairness '
        "and ordering.",
        nullable=True,
    ),
    "delay": _seconds("Run no earlier than this many seconds from now (database clock)."),
    "run_at": {
        "type": ["string", "null"],
        "format": "date-time",
        "pattern": _RUN_AT_YEAR_PATTERN,
        "description": "Run no earlier than this time: RFC 3339 with an offset, in the years "
        f"{RUN_AT_YEARS[0]} to {RUN_AT_YEARS[1]}. Not together with delay.",
    },
    "priority": {
        "type": ["integer", "null"],
        "minimum": -(2**31 - 1),
        "maximum": 2**31 - 1,
        "description": "Higher runs first within the channel group (default 0).",
    },
    "retries": {
        "type": ["integer", "null"],
        "minimum": 0,
        "maximum": 2**31 - 2,
        "description": "Retries after a failed first attempt (default 4).",
    },
    "retry_backoff": _seconds("Wait before the first retry, doubled each retry (default 1)."),
    "lease": _seconds("Lease length in seconds (default: the runner's).", positive=True),
    "ordered": {
        "type": ["boolean", "null"],
        "description": "Run strictly after the earlier ordered jobs of its channel group.",
    },
    "job_key": _text("A key unique among unfinished jobs.", nullable=True),
    "job_key_mode": {
        "enum": ["replace", "preserve_run_at", "unsafe_dedupe", None],
        "description": "What spawning does when a waiting job has the key (default replace).",
    },
    "throttle": _seconds(
        "At most one job per key per window of this many seconds; needs job_key.", positive=True
    ),
    "retain_for": _seconds("Keep the finished job and its result for this many seconds."),
    "after": {
        "type": ["array", "null"],
        "items": _uuid("A parent job id."),
        "maxItems": MAX_IDS,
        "description": "Run only after these jobs completed (a continuation).",
    },
    "run_after_failed_parents": {
        "type": ["boolean", "null"],
        "description": "Run even if a parent failed or was cancelled.",
    },
    "headers": {
        "type": ["object", "null"],
        "additionalProperties": {"type": "string", "pattern": _NO_NUL},
        "propertyNames": {"pattern": _NO_NUL},
        "maxProperties": 100,
        "description": "String headers carried to the job (current_job.headers).",
    },
    "dead_letter": _text(
        "When the job fails for good, spawn this job with the error and the payload.",
        nullable=True,
    ),
}

SPAWN_FIELDS = frozenset(_SPAWN_PROPERTIES)
"""The fields a spawn request may have."""

_JOB_STATUS = _object(
    {
        "id": _uuid("The job id."),
        "name": {"type": "string"},
        "state": _ref("JobState"),
        "attempts": {"type": "integer", "minimum": 0},
        "max_attempts": {"type": "integer", "minimum": 1},
        "channel_name": {"type": "string"},
        "channel_args": {"type": "string"},
        "priority": {"type": "integer"},
        "job_key": {"type": ["string", "null"]},
        "run_at": _date_time(
            "When it may run (scheduled, retrying, ready) or when its lease ends (running).",
            nullable=True,
        ),
        "created_at": _date_time("When it was spawned."),
        "finished_at": _date_time("When it completed or was cancelled.", nullable=True),
        "last_error": {"type": ["string", "null"], "description": "With its traceback."},
        "result": {"description": "The job's return value, when it completed and was kept."},
        "cancel_requested": {"type": "boolean"},
    }
)

_ERROR = _object(
    {
        "error": {"enum": _ERROR_CODES, "description": "A stable code."},
        "detail": {"type": "string", "description": "What was wrong, for people."},
        "field": {
            "type": ["string", "null"],
            "description": "The request field at fault, if one is.",
        },
        "job": _ref("JobStatus"),
    },
    required=["error", "detail", "field"],
)

_SCHEMAS: dict[str, Any] = {
    "JobState": {
        "enum": _STATES,
        "description": "scheduled and retrying both wait for a time; waiting jobs wait for an "
        "earlier job of their ordered chain or for parent jobs; completed and cancelled jobs "
        "are kept history.",
    },
    "JobStatus": _JOB_STATUS,
    "Error": _ERROR,
    "SpawnRequest": {
        **_object(_SPAWN_PROPERTIES, required=["name"]),
        "not": {
            "required": ["delay", "run_at"],
            "properties": {"delay": {"type": "number"}, "run_at": {"type": "string"}},
        },
        "if": {"required": ["throttle"], "properties": {"throttle": {"type": "number"}}},
        "then": {"required": ["job_key"], "properties": {"job_key": {"type": "string"}}},
    },
    "SpawnResponse": _object(
        {
            "id": _uuid(
                "The job's id (with a job key or throttle, the id "
                "of the job that stands for this one)."
            )
        }
    ),
    "JobList": _object(
        {
            "jobs": {"type": "array", "items": _ref("JobStatus")},
            "next_before": _uuid(
                "Pass as before= for the next page; null on the last page.", nullable=True
            ),
        }
    ),
    "JobDetails": _object(
        {
            "status": _ref("JobStatus"),
            "payload_json": {
                "type": ["string", "null"],
                "description": "The JSON payload as stored (JSON text), or null.",
            },
            "payload_bytes_size": {"type": ["integer", "null"], "minimum": 0},
            "headers": {"type": "object", "additionalProperties": {"type": "string"}},
            "ordered": {"type": "boolean"},
            "chain": {
                "oneOf": [
                    {"type": "null"},
                    _object(
                        {
                            "position": {"type": "integer", "minimum": 1},
                            "length": {"type": "integer", "minimum": 1},
                            "head_id": _uuid("The first job of the chain."),
                            "previous_id": _uuid("The job before this one.", nullable=True),
                            "next_id": _uuid("The job after this one.", nullable=True),
                        }
                    ),
                ],
                "description": "A queued ordered job's place in its chain.",
            },
            "parents": {
                "type": "array",
                "items": _uuid("A parent still pending."),
                "description": "Parents this continuation still waits for (completed parents "
                "are no longer listed).",
            },
            "children": {
                "type": "array",
                "items": _uuid("A waiting continuation."),
                "description": "Continuations still waiting for this job.",
            },
            "retry_backoff_s": {"type": ["number", "null"]},
            "lease_s": {"type": ["number", "null"]},
            "retain_for_s": {"type": ["number", "null"]},
            "dead_letter": {"type": ["string", "null"]},
            "attempt_errors": {
                "type": "array",
                "items": _object(
                    {
                        "attempt": {"type": "integer", "minimum": 0},
                        "at": {"type": "string", "format": "date-time"},
                        "error": {"type": "string"},
                    }
                ),
                "description": "The errors of the job's failed attempts, oldest first (the "
                "last 25; each cut to 4,000 characters).",
            },
        }
    ),
    "JobResult": _object(
        {
            "id": _uuid("The job id."),
            "state": {"const": "completed"},
            "result": {"description": "The job's return value (any JSON, null included)."},
        }
    ),
    "JobPending": _object(
        {
            "id": _uuid("The job id."),
            "state": {
                "enum": ["uncommitted", "scheduled", "waiting", "ready", "running", "retrying"]
            },
        }
    ),
    "WaitRequest": _object(
        {
            "timeout": {
                "type": ["number", "null"],
                "minimum": 0,
                "maximum": MAX_RESULT_TIMEOUT_S,
                "description": "Seconds to wait for the job to end (default 0: do not wait, "
                "only register).",
            }
        },
        required=[],
    ),
    "CancelRequest": _object(
        {"reason": _text("Recorded as the job's last error (default 'cancelled').", nullable=True)},
        required=[],
    ),
    "CancelOutcome": _object(
        {
            "id": _uuid("The job id."),
            "outcome": {
                "enum": ["cancelled", "requested"],
                "description": "cancelled: it left the queue now; requested: it is running and "
                "its runner was asked to stop it.",
            },
        }
    ),
    "CancelJobsRequest": _object(
        {
            "ids": {"type": "array", "items": _uuid("A job id."), "maxItems": MAX_IDS},
            "reason": _text("Recorded as the jobs' last error.", nullable=True),
        },
        required=["ids"],
    ),
    "CancelJobsResponse": _object(
        {
            "outcomes": {
                "type": "object",
                "propertyNames": {"format": "uuid", "pattern": _UUID_PATTERN},
                "additionalProperties": {"enum": ["cancelled", "requested"]},
                "description": "Per job found; unknown and finished jobs are left out.",
            }
        }
    ),
    "RetryJobsRequest": _object(
        {"ids": {"type": "array", "items": _uuid("A job id."), "maxItems": MAX_IDS}}
    ),
    "RetryJobsResponse": _object(
        {"retried": {"type": "array", "items": _uuid("A failed job now runnable again.")}}
    ),
    "PurgeRequest": _object(
        {
            "failed_older_than_s": _seconds(
                "Remove failed jobs that failed more than this many seconds ago (null: keep "
                "failed jobs)."
            ),
            "history_older_than_s": _seconds(
                "Remove kept jobs that finished more than this many seconds ago (expired "
                "history is always removed)."
            ),
        },
        required=[],
    ),
    "PurgeResult": _object(
        {
            "failed": {"type": "integer", "minimum": 0},
            "history": {"type": "integer", "minimum": 0},
        }
    ),
    "QueueCounts": _object(
        {
            "counts": {
                "type": "array",
                "items": _object(
                    {
                        "channel_name": {"type": "string"},
                        "state": {
                            "enum": [
                                "uncommitted",
                                "scheduled",
                                "retrying",
                                "waiting",
                                "ready",
                                "running",
                                "failed",
                            ],
                        },
                        "count": {"type": "integer", "minimum": 1},
                        "exact": {
                            "type": "boolean",
                            "description": "false: count (and oldest_ready_age_s) are "
                            "estimates. Up to 1000 jobs of a channel in a state (10,000 running "
                            "jobs in all) are counted exactly; more are estimated from a sample "
                            "of the queue, so that counting takes the same time however long "
                            "the queue is.",
                        },
                        "oldest_ready_age_s": {
                            "type": ["number", "null"],
                            "description": "For ready jobs: the age of the oldest one.",
                        },
                    }
                ),
            },
            "exact": {"type": "boolean", "description": "Whether every count is exact."},
        }
    ),
    "Throughput": _object(
        {
            "since": _date_time("The first minute counted."),
            "buckets": {
                "type": "array",
                "description": "Minutes with finished attempts, oldest first (others left out).",
                "items": _object(
                    {
                        "minute": _date_time("The minute."),
                        "completed": {"type": "integer", "minimum": 0},
                        "retried": {"type": "integer", "minimum": 0},
                        "failed": {"type": "integer", "minimum": 0},
                    }
                ),
            },
        }
    ),
    "BlockedChains": _object(
        {
            "chains": {
                "type": "array",
                "items": _object(
                    {
                        "channel_name": {"type": "string"},
                        "channel_args": {"type": "string"},
                        "head_id": _uuid("The failed head: retry or cancel it."),
                        "head_name": {"type": "string"},
                        "error": {"type": ["string", "null"]},
                        "waiting": {"type": "integer", "minimum": 0},
                    }
                ),
            }
        }
    ),
}


def _json(schema: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


def _errors(*statuses: int) -> dict[str, Any]:
    meaning = {
        400: "Invalid input; field names the culprit.",
        401: "Missing or wrong bearer token.",
        403: "State changes are disabled: the app was started without a token.",
        404: "No such job is queued or kept in the history.",
        409: "The job is not in a state that allows this; job holds its status.",
        413: f"The body is larger than {MAX_BODY_BYTES} bytes.",
        415: "The body is not application/json.",
        503: "The database is unavailable or has no sqlxmq_py schema.",
    }
    responses = {str(s): _json("Error", meaning[s]) for s in statuses}
    if 401 in statuses:
        responses["401"]["headers"] = {
            "WWW-Authenticate": {
                "description": 'Bearer realm="sqlxmq"',
                "required": True,
                "schema": {"type": "string"},
            }
        }
    return responses


_JOB_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "description": "A job id.",
    "schema": {"type": "string", "format": "uuid", "pattern": _UUID_PATTERN},
}
_AUTH: list[dict[str, list[str]]] = [{"bearerAuth": []}]
_TEXT_PARAM = {"type": "string", "pattern": _NO_NUL}
_WRITE_ERRORS = (400, 401, 403, 413, 415, 503)


def _body(schema: str, *, required: bool) -> dict[str, Any]:
    return {
        "required": required,
        "content": {"application/json": {"schema": _ref(schema)}},
    }


def _query(name: str, schema: dict[str, Any], description: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
        **extra,
    }


def _result_responses() -> dict[str, Any]:
    return {
        "200": _json("JobResult", "The job completed: its result."),
        "202": _json("JobPending", "Not finished (within the timeout): ask again."),
        "409": _json(
            "Error",
            "The job failed for good (error job_failed) or was cancelled (job_cancelled); job "
            "holds its status.",
        ),
        **_errors(400, 404, 503),
    }


_LINKS = {
    "GetJob": {"operationId": "getJob", "parameters": {"id": "$response.body#/id"}},
    "GetJobDetails": {"operationId": "getJobDetails", "parameters": {"id": "$response.body#/id"}},
    "GetJobResult": {"operationId": "getJobResult", "parameters": {"id": "$response.body#/id"}},
    "WaitForJobResult": {
        "operationId": "waitForJobResult",
        "parameters": {"id": "$response.body#/id"},
    },
    "CancelJob": {"operationId": "cancelJob", "parameters": {"id": "$response.body#/id"}},
    "RetryJob": {"operationId": "retryJob", "parameters": {"id": "$response.body#/id"}},
}

_PATHS: dict[str, Any] = {
    "/jobs": {
        "post": {
            "operationId": "spawnJob",
            "summary": "Spawn a job",
            "security": _AUTH,
            "requestBody": _body("SpawnRequest", required=True),
            "responses": {
                "201": {
                    **_json("SpawnResponse", "Spawned (committed at once)."),
                    "headers": {
                        "Location": {
                            "description": "The job's status URL.",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    },
                    "links": _LINKS,
                },
                **_errors(*_WRITE_ERRORS, 409),
            },
        },
        "get": {
            "operationId": "listJobs",
            "summary": "List jobs, newest first (queued and kept)",
            "parameters": [
                _query(
                    "state",
                    {"type": "array", "items": _ref("JobState")},
                    "Only jobs in these states (repeat the parameter).",
                    style="form",
                    explode=True,
                ),
                _query("channel_name", _TEXT_PARAM, "Only this channel."),
                _query("name", _TEXT_PARAM, "Only jobs of this name."),
                _query("job_key", _TEXT_PARAM, "Only this key."),
                _query(
                    "limit",
                    {"type": "integer", "minimum": 1, "maximum": MAX_LIST_LIMIT, "default": 50},
                    "Page size.",
                ),
                _query(
                    "before",
                    {"type": "string", "format": "uuid", "pattern": _UUID_PATTERN},
                    "Jobs older than this one: the next_before of the previous page.",
                ),
            ],
            "responses": {"200": _json("JobList", "One page."), **_errors(400, 503)},
        },
    },
    "/jobs/{id}": {
        "get": {
            "operationId": "getJob",
            "summary": "A job's status",
            "parameters": [_JOB_ID],
            "responses": {"200": _json("JobStatus", "The job."), **_errors(400, 404, 503)},
        }
    },
    "/jobs/{id}/details": {
        "get": {
            "operationId": "getJobDetails",
            "summary": "A job's status, payload, headers, ordered chain and continuations",
            "parameters": [_JOB_ID],
            "responses": {"200": _json("JobDetails", "The job."), **_errors(400, 404, 503)},
        }
    },
    "/jobs/{id}/result": {
        "get": {
            "operationId": "getJobResult",
            "summary": "A job's result, as it is now",
            "description": "A read: it changes nothing, and it does not wait. A job's result is "
            "kept only if the job asked for it (retain_for) or someone waited for it (POST): "
            "a completed job that was not kept answers 404.",
            "parameters": [_JOB_ID],
            "responses": _result_responses(),
        },
        "post": {
            "operationId": "waitForJobResult",
            "summary": "Wait for a job's result",
            "description": "Registers interest in the job (it is then kept with its result for "
            "at least an hour after it ends, and its end is notified), waits up to timeout "
            "seconds (woken by a notification, no polling), and answers as GET does.",
            "security": _AUTH,
            "parameters": [_JOB_ID],
            "requestBody": _body("WaitRequest", required=False),
            "responses": {**_result_responses(), **_errors(*_WRITE_ERRORS, 404)},
        },
    },
    "/jobs/{id}/cancel": {
        "post": {
            "operationId": "cancelJob",
            "summary": "Cancel a job",
            "description": "A waiting job leaves the queue now (kept as cancelled history); a "
            "running job's runner is asked to stop it.",
            "security": _AUTH,
            "parameters": [_JOB_ID],
            "requestBody": _body("CancelRequest", required=False),
            "responses": {
                "200": _json("CancelOutcome", "Cancelled or requested."),
                **_errors(*_WRITE_ERRORS, 404, 409),
            },
        }
    },
    "/jobs/{id}/retry": {
        "post": {
            "operationId": "retryJob",
            "summary": "Run a failed job again, with a fresh set of attempts",
            "security": _AUTH,
            "parameters": [_JOB_ID],
            "responses": {
                "200": _json("JobStatus", "Retried: the job's new status."),
                **_errors(*_WRITE_ERRORS, 404, 409),
            },
        }
    },
    "/cancel": {
        "post": {
            "operationId": "cancelJobs",
            "summary": "Cancel several jobs",
            "security": _AUTH,
            "requestBody": _body("CancelJobsRequest", required=True),
            "responses": {
                "200": _json("CancelJobsResponse", "What happened to each job found."),
                **_errors(*_WRITE_ERRORS),
            },
        }
    },
    "/retry": {
        "post": {
            "operationId": "retryJobs",
            "summary": "Run failed jobs again",
            "security": _AUTH,
            "requestBody": _body("RetryJobsRequest", required=True),
            "responses": {
                "200": _json("RetryJobsResponse", "The jobs retried (others were not failed)."),
                **_errors(*_WRITE_ERRORS),
            },
        }
    },
    "/purge": {
        "post": {
            "operationId": "purgeJobs",
            "summary": "Remove old failed jobs and history",
            "security": _AUTH,
            "requestBody": _body("PurgeRequest", required=False),
            "responses": {
                "200": _json("PurgeResult", "How many were removed."),
                **_errors(*_WRITE_ERRORS),
            },
        }
    },
    "/counts": {
        "get": {
            "operationId": "getCounts",
            "summary": "Jobs per channel and state",
            "responses": {"200": _json("QueueCounts", "The counts."), **_errors(503)},
        }
    },
    "/throughput": {
        "get": {
            "operationId": "getThroughput",
            "summary": "Finished attempts per minute, as counted by the runners",
            "parameters": [
                _query(
                    "minutes",
                    {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": MAX_THROUGHPUT_MINUTES,
                        "default": 60,
                    },
                    "How many minutes back, this minute included.",
                ),
                _query("channel_name", _TEXT_PARAM, "Only this channel."),
            ],
            "responses": {"200": _json("Throughput", "The counts."), **_errors(400, 503)},
        }
    },
    "/blocked-chains": {
        "get": {
            "operationId": "getBlockedChains",
            "summary": "Ordered chains stopped by their failed head",
            "responses": {"200": _json("BlockedChains", "The chains."), **_errors(503)},
        }
    },
}


def openapi_document(server_url: str = "/api") -> dict[str, Any]:
    """The OpenAPI 3.1 document, its server URL set to where the API is mounted."""
    return copy.deepcopy(
        {
            "openapi": "3.1.0",
            "info": {
                "title": "sqlxmq_py HTTP API",
                "version": __version__,
                "description": "Spawn, inspect and manage sqlxmq_py jobs over HTTP. Reads are "
                "open; state changes need Authorization: Bearer <token>. Every error is an Error "
                "object.",
            },
            "servers": [{"url": server_url}],
            "paths": _PATHS,
            "components": {
                "schemas": _SCHEMAS,
                "securitySchemes": {
                    "bearerAuth": {
                        "type": "http",
                        "scheme": "bearer",
                        "description": "The token the dashboard was started with.",
                    }
                },
            },
        }
    )
