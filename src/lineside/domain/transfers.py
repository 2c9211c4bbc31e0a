"""An owner handing a device to another person (Blynk's "transfer device").

The owner offers; the offer carries a one-time code the receiver opens as a link; the
receiver accepts, and the device moves from the giver's organization to the receiver's in
one step. An offer ends when accepted, cancelled by the giver, or expired; a device changes
hands by only one offer (the first accepted), and an offer for a device its giver no longer
owns is void.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

TRANSFER_LIFETIME = timedelta(days=7)


class TransferStatus(StrEnum):
    OPEN = "open"
    ACCEPTED = "accepted"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


@dataclass(frozen=True)
class DeviceTransfer:
    id: str
    device_id: str
    from_organization_id: str
    offered_by: str
    created_at: datetime
    expires_at: datetime
    accepted_at: datetime | None = None
    to_organization_id: str | None = None
    cancelled_at: datetime | None = None

    def status(self, now: datetime) -> TransferStatus:
        if self.accepted_at is not None:
            return TransferStatus.ACCEPTED
        if self.cancelled_at is not None:
            return TransferStatus.CANCELLED
        return TransferStatus.EXPIRED if now >= self.expires_at else TransferStatus.OPEN
