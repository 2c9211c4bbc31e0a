"""Guards around requests: attempt limits and idempotent retries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol, TypeVar


@dataclass(frozen=True, slots=True)
class Slot:
    """One attempt's place in a rate limit's window: taken (the attempt may go ahead, the
    ``count``-th of the window), or refused with the seconds until the window ends."""

    taken: bool
    count: int
    retry_after: int = 0


class RateLimiter(Protocol):
    def acquire(self, bucket: str, limit: int, window: timedelta) -> Slot: ...
    def release(self, bucket: str, window: timedelta) -> None: ...


@dataclass(frozen=True)
class StoredResponse:
    """The first answer to a create call, as a retry with its Idempotency-Key gets it back."""

    status_code: int
    content_type: str
    body: str


KeptAnswer = TypeVar("KeptAnswer")


class IdempotencyStore(Protocol[KeptAnswer]):
    """First answers of create calls, replayed to retries (adapters.db.idempotency). A slot
    is where one (credential, key) pair's answer is kept; the caller only hands it back."""

    def scope(self, credential: str, key: str) -> KeptAnswer: ...
    # The stored answer, or None after claiming the slot for this request.
    def begin(self, scope: KeptAnswer, request_hash: str) -> StoredResponse | None: ...
    # Store the answer (None: the request failed, free the slot for a retry).
    def finish(self, scope: KeptAnswer, response: StoredResponse | None) -> None: ...
