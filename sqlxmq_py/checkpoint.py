"""Checkpoint: what a running job saves for its next attempt (``CurrentJob.checkpoint``)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Self

from ._validate import Duration, check_int, to_timedelta
from .payload import check_raw_json, encode_bytes, encode_json

__all__ = ["Checkpoint"]


class Checkpoint:
    """What a running job saves for its next attempt: see ``CurrentJob.checkpoint``.

    Unset parts stay as they are: the payload is replaced only when one is set here.
    """

    __slots__ = ("_duration", "_extra_retries", "_payload_bytes", "_payload_json", "_set_bytes")

    def __init__(self) -> None:
        """An empty checkpoint: it changes nothing until options are set."""
        self._duration = timedelta(0)
        self._extra_retries = 0
        self._payload_json: str | None = None
        self._payload_bytes: bytes | None = None
        self._set_bytes = False

    def set_json(self, value: object) -> Self:
        """Replaces the JSON payload with ``value`` encoded as JSON."""
        self._payload_json = encode_json(value)
        return self

    def set_raw_json(self, raw_json: str) -> Self:
        """Replaces the JSON payload with this JSON text."""
        self._payload_json = check_raw_json(raw_json)
        return self

    def set_raw_bytes(self, raw_bytes: bytes | bytearray | memoryview | None) -> Self:
        """Replaces the binary payload (``None`` removes it)."""
        self._payload_bytes = None if raw_bytes is None else encode_bytes(raw_bytes)
        self._set_bytes = True
        return self

    def set_extra_retries(self, extra_retries: int) -> Self:
        """Grants this many more attempts (a job that made progress deserves them)."""
        self._extra_retries = check_int("extra_retries", extra_retries, minimum=0)
        return self

    def set_duration(self, duration: Duration) -> Self:
        """Extends the job's lease to at least ``duration`` from now."""
        self._duration = to_timedelta("duration", duration)
        return self

    def params(self, job_id: uuid.UUID, token: uuid.UUID) -> dict[str, object]:
        """The parameters of the ``checkpoint`` statement for the given lease."""
        return {
            "id": job_id,
            "token": token,
            "extra_retries": self._extra_retries,
            "duration": self._duration,
            "set_json": self._payload_json is not None,
            "payload_json": self._payload_json,
            "set_bytes": self._set_bytes,
            "payload_bytes": self._payload_bytes,
        }
