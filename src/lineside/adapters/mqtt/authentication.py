"""CONNECTs that arrive together are checked together.

Each CONNECT waits on a future; one drain task hands everything waiting to a worker thread,
which checks the whole batch with ``authenticate_connections`` (one query per kind of secret),
and resolves the futures. While that query runs, new CONNECTs queue for the next round, so
the batch grows with the load by itself: one CONNECT alone costs one thread hop and one
query, a reconnect storm costs one of each per few hundred devices, and the broker's event
loop never waits on the database (on PostgreSQL, a query on the loop would stall every
connection for a network round trip).
"""

from __future__ import annotations

import asyncio
import logging

from lineside.services.context import ServiceContext
from lineside.services.mqtt_access import ConnectAttempt, MqttIdentity, authenticate_connections

log = logging.getLogger("lineside.mqtt")

MAX_BATCH = 500


class BatchedAuthenticator:
    """Lives on the broker's event loop; ``identify`` is called from that loop only."""

    def __init__(self, ctx: ServiceContext) -> None:
        self._ctx = ctx
        self._waiting: list[tuple[ConnectAttempt, asyncio.Future[MqttIdentity | None]]] = []
        self._drain: asyncio.Task[None] | None = None

    async def identify(self, attempt: ConnectAttempt) -> MqttIdentity | None:
        """The identity behind the CONNECT, or None when it is refused (or the check failed)."""
        future: asyncio.Future[MqttIdentity | None] = asyncio.get_running_loop().create_future()
        self._waiting.append((attempt, future))
        if self._drain is None or self._drain.done():
            self._drain = asyncio.create_task(self._drain_waiting())
        return await future

    async def _drain_waiting(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
            attempts = [attempt for attempt, _ in batch]
            try:
                identities = await asyncio.to_thread(authenticate_connections, self._ctx, attempts)
            except Exception:
                log.exception(
                    "MQTT: authentication failed with an error; refusing %d connection(s)", len(batch)
                )
                identities = [None] * len(batch)
            for (_, future), identity in zip(batch, identities, strict=True):
                if not future.done():  # its connection may have been cancelled meanwhile
                    future.set_result(identity)
