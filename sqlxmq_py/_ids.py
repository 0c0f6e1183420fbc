"""Job ids: version 7 UUIDs, so that new jobs land at the right edge of the primary key index."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Protocol

__all__ = ["assign_ids", "new_job_ids"]

_last = 0
_lock = threading.Lock()


def new_job_ids(count: int) -> list[uuid.UUID]:
    """``count`` new UUIDv7s (RFC 9562): 48 bits of Unix milliseconds, then 74 bits that are
    random but for their low 10 bits, which leave room to count up.

    Ids made by one process only grow (within a millisecond the last one is incremented), so
    jobs spawned together sort in the order they were spawned. One call for a whole batch: one
    clock read and one read of randomness.
    """
    global _last
    now = (time.time_ns() // 1_000_000) << 74
    noise = os.urandom(8 * count)
    make = uuid.UUID
    ids = []
    with _lock:
        last = _last
        for at in range(0, 8 * count, 8):
            # the 122 bits that are not version or variant: milliseconds, then randomness
            value = now | int.from_bytes(noise[at : at + 8], "big") >> 2 << 10
            value = max(value, last + 1)
            last = value
            ids.append(
                make(
                    int=(value >> 74) << 80
                    | 0x7 << 76
                    | ((value >> 62) & 0xFFF) << 64
                    | 0x2 << 62
                    | (value & (2**62 - 1))
                )
            )
        _last = last
    return ids


class _HasId(Protocol):
    @property
    def id(self) -> uuid.UUID | None: ...


def assign_ids(jobs: Sequence[_HasId]) -> list[uuid.UUID]:
    """The ids of a batch: each job's own (``set_id``), else a new one, in batch order."""
    fresh = iter(new_job_ids(sum(1 for j in jobs if j.id is None)))
    return [j.id or next(fresh) for j in jobs]
