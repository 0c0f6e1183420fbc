"""The field types of the HTTP API's models and the limits they enforce: each type validates a
value and describes it in the OpenAPI document, from the same declaration."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
)

__all__ = [
    "BASE64_PATTERN",
    "MAX_BODY_BYTES",
    "MAX_IDS",
    "MAX_LIST_LIMIT",
    "MAX_RESULT_TIMEOUT_S",
    "MAX_SECONDS",
    "MAX_THROUGHPUT_MINUTES",
    "MIN_POSITIVE_SECONDS",
    "NO_NUL",
    "RUN_AT_YEARS",
    "UUID_PATTERN",
    "Count",
    "Ids",
    "Integer",
    "JobId",
    "Model",
    "PositiveSeconds",
    "QueryDigits",
    "RunAt",
    "Seconds",
    "Text",
    "Timestamp",
    "canonical_uuid",
]

MAX_BODY_BYTES = 16 * 1024 * 1024
"""Largest request body accepted (413 above)."""
MAX_IDS = 1000
"""Most job ids in one request."""
MAX_LIST_LIMIT = 1000
"""Largest page of ``GET /api/jobs``."""
MAX_RESULT_TIMEOUT_S = 60.0
"""Longest wait of ``POST /api/jobs/{id}/result``."""
MAX_SECONDS = 100 * 365 * 86400
"""Longest duration option (100 years), so that run times stay within PostgreSQL's range."""
MIN_POSITIVE_SECONDS = 0.001
"""Shortest lease or throttle window."""
MAX_THROUGHPUT_MINUTES = 7 * 24 * 60
"""Runners keep per-minute counts for seven days."""
RUN_AT_YEARS = (1970, 8998)
"""``run_at`` must fall in these years (inclusive): the schema keeps run times before 9000."""

NO_NUL = "^[^\\u0000]*$"
"""PostgreSQL text cannot hold NUL characters."""
UUID_PATTERN = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
BASE64_PATTERN = "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
"""Standard base64, padded."""
_UUID = re.compile(UUID_PATTERN, re.ASCII)
_RUN_AT_YEAR_PATTERN = "^(19[7-9][0-9]|[2-7][0-9]{3}|8[0-8][0-9]{2}|89[0-8][0-9]|899[0-8])-"
_RFC3339 = re.compile(
    r"^(\d{4})-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$", re.ASCII
)
_INT = re.compile(r"^[+-]?\d{1,12}$", re.ASCII)


class Model(BaseModel):
    """A request or response object: strict types (``"3"`` is no integer, ``1`` no boolean)
    and no fields beyond those declared."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


def canonical_uuid(value: Any) -> uuid.UUID:
    """A job id in the canonical 8-4-4-4-12 hexadecimal form (``ValueError`` otherwise)."""
    if isinstance(value, uuid.UUID):
        return value
    if not isinstance(value, str) or not _UUID.fullmatch(value):
        shown = value[:80] if isinstance(value, str) else type(value).__name__
        raise ValueError(f"must be a UUID like 0190f3c4-...-..., got {shown!r}")
    return uuid.UUID(value)


def _rfc3339(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    match = _RFC3339.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(
            "must be an RFC 3339 date-time with an offset (e.g. 2030-01-01T12:00:00Z), "
            f"got {str(value)[:80]!r}"
        )
    first, last = RUN_AT_YEARS
    if not first <= int(match.group(1)) <= last:
        raise ValueError(f"must be in the years {first} to {last}, got {value[:80]!r}")
    # in UTC: RFC 3339 allows offsets up to 23:59, PostgreSQL only up to 15:59
    return datetime.fromisoformat(value.upper()).astimezone(UTC)


def _query_int(value: Any) -> Any:
    """A query parameter's digits as an integer (``int()`` would also take ``" 5\\n"``, ``"5_0"``
    and other digits than ASCII)."""
    if isinstance(value, str):
        if not _INT.fullmatch(value):
            raise ValueError(f"must be an integer, got {value[:40]!r}")
        return int(value)
    return value


def _integral(value: Any) -> Any:
    """JSON Schema counts ``3.0`` as an integer, so the API does too (never ``true``)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _iso(value: datetime) -> str:
    return value.isoformat()


Text = Annotated[str, Field(pattern=NO_NUL)]
"""Any text PostgreSQL can store: no NUL, no lone surrogate (refused as invalid Unicode)."""

JobId = Annotated[
    uuid.UUID,
    BeforeValidator(canonical_uuid),
    WithJsonSchema({"type": "string", "format": "uuid", "pattern": UUID_PATTERN}),
]
"""A job id, in the canonical form only."""

Ids = Annotated[list[JobId], Field(max_length=MAX_IDS)]
"""Job ids of a bulk request."""

Seconds = Annotated[float, Field(ge=0, le=MAX_SECONDS, allow_inf_nan=False)]
"""A duration in seconds (an integer or a number)."""

PositiveSeconds = Annotated[
    float, Field(ge=MIN_POSITIVE_SECONDS, le=MAX_SECONDS, allow_inf_nan=False)
]
"""A duration that must be longer than nothing."""

RunAt = Annotated[
    datetime,
    BeforeValidator(_rfc3339),
    WithJsonSchema({"type": "string", "format": "date-time", "pattern": _RUN_AT_YEAR_PATTERN}),
]
"""An RFC 3339 date-time with an offset, within the years the schema keeps; read in UTC."""

Timestamp = Annotated[datetime, PlainSerializer(_iso, return_type=str)]
"""A date-time answered as RFC 3339 with its offset (``+00:00``)."""

Integer = BeforeValidator(_integral)
"""Put on an integer field of a body: ``3.0`` is accepted as ``3``, as JSON Schema has it."""

Count = Annotated[int, Field(ge=0)]
"""How many."""


QueryDigits = BeforeValidator(_query_int)
"""Put on an integer query parameter: written in ASCII digits (``int()`` also takes ``" 5\\n"``,
``"5_0"`` and ``"²"``)."""
