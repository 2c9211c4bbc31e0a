"""Named domain errors.

Entrypoints translate these into HTTP problem details or CLI messages; each carries a
human-readable message that is safe to show (it never contains a secret).
"""

from __future__ import annotations

from dataclasses import dataclass


class DomainError(Exception):
    """Base class of every error a user can cause."""

    title = "Request cannot be processed"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(DomainError):
    title = "Not found"


class AlreadyExists(DomainError):
    title = "Already exists"


class Conflict(DomainError):
    title = "Conflict"


class StationLimitReached(Conflict):
    """An offline station's budget is spent or its window is closed: the line stops there."""

    title = "Station limit reached"


class InvalidInput(DomainError):
    title = "Invalid input"


class Unauthenticated(DomainError):
    title = "Unauthenticated"


class CertificateRefused(InvalidInput):
    """A certificate (a CA's, a proof of possession, a CRL, a device's) that is not good
    enough; ``detail`` says why, for the log, the event and the answer."""

    title = "Certificate refused"


class PermissionDenied(DomainError):
    title = "Permission denied"


class IllegalTransition(Conflict):
    """A lifecycle step that the device's current state does not allow."""

    title = "Illegal lifecycle transition"

    def __init__(self, action: str, state: str) -> None:
        super().__init__(f"A device in state '{state}' cannot be {action}.")
        self.action = action
        self.state = state


@dataclass(frozen=True)
class RowError:
    """One problem in one row of a batch; row 1 is the CSV header, data starts at row 2."""

    row: int
    column: str
    reason: str


class BatchRejected(InvalidInput):
    """A batch with at least one bad row; nothing of it was written."""

    title = "Batch rejected"

    def __init__(self, errors: list[RowError]) -> None:
        count = len(errors)
        noun = "problem" if count == 1 else "problems"
        super().__init__(f"The batch has {count} {noun}; nothing was written.")
        self.errors = errors


class Gone(DomainError):
    """Something that existed once and is no longer there to be had (HTTP 410)."""

    title = "Gone"


class QuotaExceeded(PermissionDenied):
    title = "Quota exceeded"


class TooManyAttempts(DomainError):
    title = "Too many attempts"

    def __init__(self, detail: str, retry_after_seconds: int) -> None:
        super().__init__(detail)
        self.retry_after_seconds = retry_after_seconds
