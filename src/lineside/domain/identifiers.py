"""Identifiers that sort by creation time.

UUIDv7 (RFC 9562) keeps inserts at the right edge of every index and makes "order by id"
the same as "order by creation", which is what cursor pagination needs.
"""

from __future__ import annotations

import secrets
import time
import uuid


def new_id() -> str:
    """A fresh UUIDv7 as its canonical string (``new_ids``' layout: one read of the random
    source, no UUID object; a replayed station chunk makes thousands)."""
    return new_ids(1)[0]


def is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def new_ids(count: int) -> list[str]:
    """``count`` UUIDv7 sharing this millisecond, from one read of the random source.

    The same layout as ``new_id`` at a third of the cost per id, for batches.
    """
    millis = time.time_ns() // 1_000_000
    stamp = f"{millis & 0xFFFF_FFFF_FFFF:012x}"
    head = f"{stamp[:8]}-{stamp[8:]}-7"
    randoms = secrets.token_bytes(10 * count)
    ids = []
    for start in range(0, 10 * count, 10):
        bits = int.from_bytes(randoms[start : start + 10])
        tail = 0x8000_0000_0000_0000 | (bits & 0x3FFF_FFFF_FFFF_FFFF)
        ids.append(f"{head}{bits >> 68:03x}-{tail >> 48:04x}-{tail & 0xFFFF_FFFF_FFFF:012x}")
    return ids
