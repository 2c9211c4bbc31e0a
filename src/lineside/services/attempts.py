"""Charging attempts against rate limits before doing the costly or revealing work.

A guess at a claim code or a password takes its slots first, atomically, and gives them
back only when it turns out rightful (the right code, the right password). So neither
concurrency nor the order of requests lets more wrong guesses through than the limits say,
and a rightful attempt costs nobody anything.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

from lineside.domain.errors import TooManyAttempts
from lineside.services.context import ServiceContext
from lineside.services.ports import Slot


class Charge:
    """The slots one attempt holds, in buckets of one window."""

    def __init__(self, ctx: ServiceContext, window: timedelta, what: str) -> None:
        self._ctx = ctx
        self._window = window
        self._what = what
        self._taken: list[str] = []

    def take(self, bucket: str, limit: int) -> Slot:
        """A slot of ``bucket``; if it is full, the slots taken so far go back and
        TooManyAttempts says how long to wait."""
        slot = self._ctx.rate_limiter.acquire(bucket, limit, self._window)
        if not slot.taken:
            self.refund()
            raise TooManyAttempts(
                f"Too many {self._what}; try again in {slot.retry_after} s.", slot.retry_after
            )
        self._taken.append(bucket)
        return slot

    def refund(self) -> None:
        """The attempt was rightful (or never happened): give every slot back."""
        taken, self._taken = self._taken, []
        for bucket in taken:
            self._ctx.rate_limiter.release(bucket, self._window)


def keyed(text: str) -> str:
    """A bucket key for text a person chose (an email): bounded length, nothing stored in clear."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
