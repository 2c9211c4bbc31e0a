"""Online status, last-seen time and activation on first connection, written in batches.

STUB: the presence helper replaces this module.
"""

from __future__ import annotations

from dataclasses import dataclass

from lineside.services.context import ServiceContext


@dataclass(frozen=True, slots=True)
class Flushed:
    activated: int = 0  # devices that became activated in this flush
    updated: int = 0  # devices whose presence was written


class PresenceRecorder:
    """Thread-safe: brokers call connected/disconnected from any thread; one flusher calls
    ``flush`` every ``LINESIDE_PRESENCE_FLUSH_SECONDS``."""

    def connected(self, device_id: str) -> None:
        del device_id

    def disconnected(self, device_id: str) -> None:
        del device_id

    def seen(self, device_id: str) -> None:
        del device_id

    def flush(self, ctx: ServiceContext) -> Flushed:
        del ctx
        return Flushed()
