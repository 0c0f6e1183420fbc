"""Checking the job ids an admin call is given."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from ..errors import ConfigurationError

__all__ = ["ids"]


def ids(job_ids: Iterable[uuid.UUID]) -> list[uuid.UUID]:
    if isinstance(job_ids, uuid.UUID):
        raise ConfigurationError("pass a list of job ids, not one id")
    ids = list(job_ids)
    for job_id in ids:
        if not isinstance(job_id, uuid.UUID):
            raise ConfigurationError(f"job ids must be uuid.UUID, got {job_id!r}")
    return ids
