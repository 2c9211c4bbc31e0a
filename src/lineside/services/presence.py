"""Online status, last-seen time and activation on first connection, written in batches.

Brokers (the embedded one, and production brokers through their HTTP hooks) tell the
recorder what they see, from any thread; nothing touches the database then. A flusher calls
``flush`` every few seconds, and one transaction writes the whole window::

    connected / disconnected / seen  --(lock)-->  latest change per device
                                                  devices that connected in the window
    flush(ctx):  take both  ->  one unit of work:
                   (online, last_seen_at) of every device, in one UPDATE (its rows locked
                     in id order first)
                   activate the connected devices whose lifecycle allows it
                     (blessed; or defined in a product that does not require blessing),
                     in one conditional UPDATE ... RETURNING: of racing flushes exactly
                     one wins each device, so one ``device.activated`` event each
                     (-> webhooks), all written at once
                 ->  on failure, put the changes back (newer ones win) for the next flush

So a reconnect storm of N devices is a handful of statements however large N is, not N
transactions (see adapters.db.device_rows).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from lineside.domain.clock import utc_now
from lineside.domain.events import DomainEvent
from lineside.domain.identifiers import is_uuid
from lineside.domain.lifecycle import DeviceState, Transition, apply_transition
from lineside.domain.models import Device
from lineside.services.context import ServiceContext
from lineside.services.ports import UnitOfWork

ACTOR = "mqtt"


@dataclass(frozen=True, slots=True)
class Flushed:
    activated: int = 0  # devices that became activated in this flush
    updated: int = 0  # devices whose presence was written
    activated_ids: tuple[str, ...] = ()  # which ones (a broker may announce their firmware)


@dataclass(frozen=True, slots=True)
class Change:
    online: bool
    at: datetime


@dataclass(frozen=True, slots=True)
class Window:
    """What the recorder saw since the last flush."""

    changes: dict[str, Change]  # the latest per device
    connected: dict[str, datetime]  # first connection per device: these may activate

    def __bool__(self) -> bool:
        return bool(self.changes or self.connected)


class PresenceRecorder:
    """Thread-safe: brokers call connected/disconnected from any thread; one flusher calls
    ``flush`` every ``LINESIDE_PRESENCE_FLUSH_SECONDS``. Memory is one entry per device that
    changed since the last flush, however often it reconnected."""

    def __init__(self, clock: Callable[[], datetime] = utc_now) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._changes: dict[str, Change] = {}
        self._connected: dict[str, datetime] = {}

    def connected(self, device_id: str) -> None:
        now = self._clock()
        with self._lock:
            self._changes[device_id] = Change(True, now)
            # A connection still counts for activation if it ends before the flush.
            self._connected.setdefault(device_id, now)

    def disconnected(self, device_id: str) -> None:
        self._record(device_id, online=False)

    def seen(self, device_id: str) -> None:
        """The device did something (published, subscribed): it is online now."""
        self._record(device_id, online=True)

    def _record(self, device_id: str, *, online: bool) -> None:
        change = Change(online, self._clock())
        with self._lock:
            self._changes[device_id] = change

    def pending(self) -> int:
        """Devices with a change waiting for the next flush."""
        with self._lock:
            return len(self._changes.keys() | self._connected.keys())

    def take(self) -> Window:
        """Everything recorded so far; the recorder starts a new window."""
        with self._lock:
            window = Window(self._changes, self._connected)
            self._changes, self._connected = {}, {}
        return window

    def put_back(self, window: Window) -> None:
        """Return a window that could not be written; what was recorded since wins."""
        with self._lock:
            for device_id, change in window.changes.items():
                newer = self._changes.get(device_id)
                if newer is None or newer.at < change.at:
                    self._changes[device_id] = change
            for device_id, at in window.connected.items():
                since = self._connected.get(device_id)
                self._connected[device_id] = at if since is None else min(at, since)

    def flush(self, ctx: ServiceContext) -> Flushed:
        """Write everything recorded so far in one unit of work. If that fails (the database
        is down), the changes go back into the recorder for the next flush, and the error
        is raised for the flusher to log."""
        window = self.take()
        if not window:
            return Flushed()
        try:
            return write_window(ctx, window)
        except BaseException:
            self.put_back(window)
            raise


def write_window(ctx: ServiceContext, window: Window) -> Flushed:
    # Non-device identities (the provisioning user) have no row to write.
    changes = {device_id: c for device_id, c in window.changes.items() if is_uuid(device_id)}
    connected = {device_id: at for device_id, at in window.connected.items() if is_uuid(device_id)}
    with ctx.unit_of_work() as uow:
        # Presence first, in id order: it locks every row this flush will touch in one global
        # order, so two processes flushing overlapping windows queue instead of deadlocking
        # (if the database still picks a victim, its window goes back and is retried).
        updates = [(device_id, c.online, c.at) for device_id, c in sorted(changes.items())]
        updated = uow.devices.record_presence(updates)
        activated = _activate(uow, connected)
        uow.commit()
    return Flushed(activated=len(activated), updated=updated, activated_ids=tuple(activated))


def may_activate_on_connection(device: Device, requires_blessing: bool) -> bool:
    """Blessed devices activate at their first connection; defined ones too, unless their
    product requires blessing. Every other state only gets presence."""
    if device.state is DeviceState.BLESSED:
        return True
    return device.state is DeviceState.DEFINED and not requires_blessing


def _activate(uow: UnitOfWork, connected: dict[str, datetime]) -> list[str]:
    """Activate the devices that may; the ids of those this flush activated."""
    if not connected:
        return []
    candidates = uow.devices.activation_candidates(sorted(connected))
    activatable = sorted(
        (device for device, requires in candidates if may_activate_on_connection(device, requires)),
        key=lambda device: device.id,
    )
    # Another flush (another process) may have activated some since we read them: for each
    # device exactly one flush matches the state it read, and only the winner's event is written.
    won = uow.devices.activate_if_still([(d.id, d.state, connected[d.id]) for d in activatable])
    activated = [device for device in activatable if device.id in won]
    uow.events.add_many([_activation_event(device, connected[device.id]) for device in activated])
    return [device.id for device in activated]


def _activation_event(device: Device, at: datetime) -> DomainEvent:
    return apply_transition(device, Transition.ACTIVATE, at=at, actor=ACTOR, data={"via": "mqtt"})
