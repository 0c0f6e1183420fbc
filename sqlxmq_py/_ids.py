"""Job ids: version 7 UUIDs, so that new jobs land at the right edge of the primary key index."""

from __future__ import annotations

import os
import threading
import time
import uuid

__all__ = ["new_job_id"]

_last = 0
_lock = threading.Lock()


def new_job_id() -> uuid.UUID:
    """A new UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then 74 random bits.

    Ids made by one process only grow (within a millisecond the last one is incremented), so
    jobs spawned together sort in the order they were spawned.
    """
    global _last
    # the 122 bits that are not version or variant: milliseconds, then randomness
    value = (time.time_ns() // 1_000_000) << 74 | int.from_bytes(os.urandom(10), "big") >> 6
    with _lock:
        value = max(value, _last + 1)
        _last = value
    millis, rand_a, rand_b = value >> 74, (value >> 62) & 0xFFF, value & (2**62 - 1)
    return uuid.UUID(int=millis << 80 | 0x7 << 76 | rand_a << 64 | 0x2 << 62 | rand_b)
