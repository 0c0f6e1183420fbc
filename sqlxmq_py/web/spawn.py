"""A spawn request made into a ``JobBuilder``: the request model has checked every field's
type and bounds; the builder checks what only it knows (names, sizes) and is answered as a 400
naming the field."""

from __future__ import annotations

import base64
import binascii
from datetime import timedelta

from ..builder import JobBuilder
from .http import bad, field_errors
from .requests import SpawnRequest

__all__ = ["INDEXED_FIELDS", "build_spawn"]

INDEXED_FIELDS = (
    ("job_key", ("job_key",)),
    ("throttle", ("job_key",)),
    ("ordered", ("channel_name", "channel_args")),
    ("ready", ("channel_name", "channel_args")),
    ("scheduled", ("channel_name",)),
    ("admin", ("channel_name",)),
    ("name", ("name",)),
)
"""(part of an index's name, the spawn fields it holds), to name the field whose text was too
long for an index entry."""


def _seconds(value: float | None) -> timedelta | None:
    return None if value is None else timedelta(seconds=value)


def build_spawn(request: SpawnRequest) -> JobBuilder:
    """A ``JobBuilder`` from a spawn request."""
    with field_errors("name"):
        builder = JobBuilder(request.name)
    if request.id is not None:
        builder.set_id(request.id)
    for field, setter in (
        ("channel_name", builder.set_channel_name),
        ("channel_args", builder.set_channel_args),
        ("dead_letter", builder.set_dead_letter),
    ):
        text = getattr(request, field)
        if text is not None:
            with field_errors(field):
                setter(text)
    if "payload" in request.model_fields_set:
        with field_errors("payload"):
            builder.set_json(request.payload)
    if request.payload_base64 is not None:
        try:
            raw = base64.b64decode(request.payload_base64, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise bad("payload_base64", f"payload_base64 is not valid base64: {exc}") from exc
        builder.set_raw_bytes(raw)
    if request.delay is not None:
        with field_errors("delay"):
            builder.set_delay(timedelta(seconds=request.delay))
    if request.run_at is not None:
        with field_errors("run_at"):
            builder.set_run_at(request.run_at)
    if request.priority is not None:
        builder.set_priority(request.priority)
    if request.retries is not None:
        builder.set_retries(request.retries)
    for field, duration_setter in (
        ("retry_backoff", builder.set_retry_backoff),
        ("lease", builder.set_lease),
        ("retain_for", builder.set_retain_for),
    ):
        duration = _seconds(getattr(request, field))
        if duration is not None:
            with field_errors(field):
                duration_setter(duration)
    if request.ordered is not None:
        builder.set_ordered(request.ordered)
    if request.job_key is not None:
        with field_errors("job_key"):
            builder.set_job_key(
                request.job_key,
                request.job_key_mode or "replace",
                throttle=_seconds(request.throttle),
            )
    if request.after or request.run_after_failed_parents is not None:
        builder.set_after(
            request.after or [], run_after_failed_parents=bool(request.run_after_failed_parents)
        )
    if request.rate_keys:
        with field_errors("rate_keys"):
            builder.set_rate_keys(request.rate_keys)
    for header, text in (request.headers or {}).items():
        builder.set_header(header, text)
    return builder
