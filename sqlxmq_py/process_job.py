"""The running job as a job declared with ``isolation="process"`` sees it, in its worker
process: a plain copy of what the runner leased (id, name, attempt, channel, payload), with no
connection to the database and no runner. Such a job reports by returning (its return value is
its result) or raising; it cannot complete itself in a transaction of its own, checkpoint or
keep its lease alive (the runner renews the lease while the process works).

::

    @job(isolation="process", timeout=60)
    def render(current_job: ProcessJob[Page]) -> int:
        return expensive(current_job.payload)
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast

from .codec import Codec
from .payload import decode_json

__all__ = ["ProcessJob"]

T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class ProcessJob(Generic[T]):
    """A leased job, copied into the worker process that runs it."""

    id: uuid.UUID
    name: str
    attempt: int
    max_attempts: int
    channel_name: str
    channel_args: str
    job_key: str | None
    headers: dict[str, str]
    payload_json: str | None = field(repr=False)
    payload_bytes: bytes | None = field(repr=False)
    codec: Codec | None = field(default=None, repr=False, compare=False)
    """The declared payload type's codec, set in the worker process (never pickled)."""

    def json(self) -> Any:
        """The decoded JSON payload, or ``None`` if the job has none.

        Raises:
            PayloadError: the stored payload is not valid JSON.
        """
        return decode_json(self.payload_json, job_name=self.name)

    def raw_json(self) -> str | None:
        """The JSON payload as stored, or ``None``."""
        return self.payload_json

    def raw_bytes(self) -> bytes | None:
        """The binary payload, or ``None``."""
        return self.payload_bytes

    @property
    def payload(self) -> T:
        """The payload, decoded and validated as the job's declared type (plain decoded JSON
        for an untyped job).

        Raises:
            PayloadError: the stored payload does not validate.
        """
        if self.codec is None:
            return cast(T, self.json())
        return cast(T, self.codec.decode(self.payload_json, what=f"payload of job {self.name!r}"))

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["codec"] = None  # a codec holds compiled validators: rebuilt where it is needed
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
