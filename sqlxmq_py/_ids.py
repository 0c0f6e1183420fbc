"""Job ids: version 7 UUIDs, so that new jobs land at the right edge of the primary key index."""

from __future__ import annotations

import os
import time
import uuid

__all__ = ["new_job_id"]

_VERSION_MASK = ~(0xF << 76) & (2**128 - 1)
_VARIANT_MASK = ~(0x3 << 62) & (2**128 - 1)


def new_job_id() -> uuid.UUID:
    """A new UUIDv7: 48 bits of Unix milliseconds, then 74 random bits (RFC 9562)."""
    millis = time.time_ns() // 1_000_000
    value = (millis & 0xFFFF_FFFF_FFFF) << 80 | int.from_bytes(os.urandom(10), "big")
    value = (value & _VERSION_MASK) | (0x7 << 76)
    value = (value & _VARIANT_MASK) | (0x2 << 62)
    return uuid.UUID(int=value)
