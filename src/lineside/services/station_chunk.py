"""A chunk of a station's ledger replayed in memory, then written in a few statements.

The replay runs the online line's own rules (services.factory_line) entry by entry, but
against ``ChunkUnit``: a unit of work whose repositories answer from rows read once for the
whole chunk (a few ``IN`` queries) and keep every write in memory. Entries are atomic: what
a refused entry started is dropped (``drop_entry``), and the sync stops there. ``write``
then hands the chunk's writes to the real unit of work in dependency order, batched: device
inserts (each as its last state change left it), state changes of the devices it read (one
conditional update per device, as one executemany), test runs, events. A state change whose
row moved meanwhile (a concurrent line) fails the whole upload, as a conflict the station
retries.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from lineside.domain.errors import Conflict
from lineside.domain.events import DomainEvent
from lineside.domain.factory import TestRun
from lineside.domain.lifecycle import DeviceState
from lineside.domain.models import Certificate, Device, DeviceGroup, Product
from lineside.domain.stations import LedgerEntry, LedgerKind, PoolEntry
from lineside.services.ports import UnitOfWork

_RETRY = "Devices of this upload changed on the server at the same time; upload it again."


def _snapshot(device: Device) -> Device:
    """The device as it is now: the in-memory one keeps moving through later entries."""
    taken = copy.copy(device)
    taken.timeline = dict(device.timeline)
    return taken


@dataclass
class _Writes:
    """What the entries replayed so far would write, in order within each kind."""

    groups: list[tuple[str, DeviceGroup]] = field(default_factory=list)  # ("unless_taken" | "add")
    inserts: list[Device] = field(default_factory=list)
    steps: list[Callable[[UnitOfWork], None]] = field(default_factory=list)  # the rare single writes
    states: list[tuple[Device, DeviceState]] = field(default_factory=list)
    runs: list[TestRun] = field(default_factory=list)
    certificates: list[Certificate] = field(default_factory=list)
    events: list[DomainEvent] = field(default_factory=list)
    activity: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = field(default_factory=list)

    def mark(self) -> dict[str, int]:
        return {name: len(value) for name, value in vars(self).items()}

    def drop_since(self, mark: dict[str, int]) -> None:
        for name, length in mark.items():
            del getattr(self, name)[length:]


class ChunkUnit:
    """The unit of work the line's rules see during a chunk's replay (see the module)."""

    def __init__(self, uow: UnitOfWork, product: Product, entries: Sequence[LedgerEntry]) -> None:
        self._uow, self.writes = uow, _Writes()
        self._mark = self.writes.mark()
        self.devices = _ChunkDevices(self, uow, product, entries)
        self.test_runs = _ChunkRuns(self, uow, entries, self.devices.known_ids(), self.devices.absent_ids())
        self.groups = _ChunkGroups(self, uow)
        self.events = _Staged(self.writes.events)
        self.activity = _ActivityCalls(self.writes.activity)
        self.stations = _ChunkPool(self, uow, entries)
        self.certificates = _ChunkCertificates(self.writes.certificates)
        self.organizations = _Memo(uow.organizations.get)
        self.device_counts = _ChunkCounts(self, uow)

    # -- one entry at a time ---------------------------------------------------------------

    def certificate_known(self, fingerprint: str) -> bool:
        """Registered with it already, or given it by an earlier entry of the chunk."""
        if any(c.fingerprint_sha256 == fingerprint for c in self.writes.certificates):
            return True
        return bool(self._uow.devices.find_by_active_certificates([fingerprint]))

    def begin_entry(self) -> None:
        self._mark = self.writes.mark()

    def drop_entry(self) -> None:
        """Forget what the refused entry started (the replay stops there)."""
        self.writes.drop_since(self._mark)
        self.test_runs.forget_staged()
        self.device_counts.forget_staged()

    # -- the chunk's writes ----------------------------------------------------------------

    def write(self) -> None:
        uow, w = self._uow, self.writes
        for how, group in w.groups:
            if how == "add":
                uow.groups.add(group)
            elif not uow.groups.add_unless_name_taken(group):
                raise Conflict(_RETRY)  # a concurrent blessing made the production group
        inserts, moves = _folded(w.inserts, w.states)
        uow.devices.add_units(inserts)
        for step in w.steps:
            step(uow)
        if not uow.devices.save_states_if(moves):
            raise Conflict(_RETRY)
        uow.test_runs.add_many(w.runs)
        for certificate in w.certificates:
            uow.certificates.add(certificate)
        uow.events.add_many(w.events)
        for name, args, kwargs in w.activity:
            getattr(uow.activity, name)(*args, **kwargs)


def _folded(
    inserts: list[Device], states: list[tuple[Device, DeviceState]]
) -> tuple[list[Device], list[tuple[Device, DeviceState]]]:
    """Each device's moves in the chunk as one write: a device the chunk makes goes in as it
    ended (no update at all), and one it moves more than once moves once, from the state it
    was read in to the one it ended in. The chunk is one transaction, so nobody could have
    seen the states in between; its events still tell each move."""
    ended: dict[str, Device] = {}
    read_in: dict[str, DeviceState] = {}
    for device, previous in states:
        ended[device.id] = device
        read_in.setdefault(device.id, previous)
    made = {device.id for device in inserts}
    folded = [ended.get(device.id, device) for device in inserts]
    return folded, [
        (ended[device_id], previous) for device_id, previous in read_in.items() if device_id not in made
    ]


class _Staged:
    def __init__(self, into: list[Any]) -> None:
        self._into = into

    def add(self, item: Any) -> None:
        self._into.append(item)

    def add_many(self, items: Sequence[Any]) -> None:
        self._into.extend(items)


class _ActivityCalls:
    """uow.activity's counting calls, replayed on the real one by ``write``."""

    def __init__(self, into: list[tuple[str, tuple[Any, ...], dict[str, Any]]]) -> None:
        self._into = into

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args, **kwargs: self._into.append((name, args, kwargs))


class _ChunkCertificates(_Staged):
    pass


class _Memo:
    def __init__(self, read: Callable[..., Any]) -> None:
        self._read = read
        self._known: dict[tuple[Any, ...], Any] = {}

    def get(self, *args: Any, **kwargs: Any) -> Any:
        key = (*args, *sorted(kwargs.items()))
        if key not in self._known:
            self._known[key] = self._read(*args, **kwargs)
        return self._known[key]


class _ChunkCounts:
    """The quota's count: as read once, plus the devices this chunk defines (counted as they
    are staged, not over all of them at every enrollment)."""

    def __init__(self, chunk: ChunkUnit, uow: UnitOfWork) -> None:
        self._chunk, self._made = chunk, _Memo(uow.device_counts.made_by)
        self._added: Counter[str] = Counter()
        self._counted = 0  # how many of writes.inserts are in _added

    def forget_staged(self) -> None:
        """writes.inserts was cut back: count what is left of it again when next asked."""
        self._added, self._counted = Counter(), 0

    def made_by(self, organization_id: str) -> int:
        inserts = self._chunk.writes.inserts
        self._added.update(device.organization_id for device in inserts[self._counted :])
        self._counted = len(inserts)
        return int(self._made.get(organization_id)) + self._added[organization_id]


class _ChunkDevices:
    """The chunk's devices, read at once by id, hardware id and serial number; one object
    per device, so every entry sees what the ones before it did."""

    def __init__(
        self, chunk: ChunkUnit, uow: UnitOfWork, product: Product, entries: Sequence[LedgerEntry]
    ) -> None:
        self._chunk, self._live = chunk, uow.devices
        ids = {str(e.data["device_id"]) for e in entries if "device_id" in e.data}
        enrolls = [e.data for e in entries if e.kind is LedgerKind.ENROLL]
        hardware = {str(d["hardware_id"]) for d in enrolls}
        serials = {str(d["serial_number"]) for d in enrolls}
        self._by_id: dict[str, Device | None] = dict.fromkeys(ids)
        self._by_hardware: dict[tuple[str, str], Device | None] = {(product.id, h): None for h in hardware}
        self._by_serial: dict[tuple[str, str], Device | None] = {(product.id, s): None for s in serials}
        found = self._live.find_by_ids(sorted(ids))
        found += self._live.find_by_hardware_ids(product.id, sorted(hardware))
        found += self._live.find_by_serial_numbers(product.id, sorted(serials))
        for device in found:
            self._know(self._by_id.get(device.id) or device)

    def known_ids(self) -> list[str]:
        return [device_id for device_id, device in self._by_id.items() if device is not None]

    def absent_ids(self) -> list[str]:
        """The entries' device ids no device had when the chunk was read (called then)."""
        return [device_id for device_id, device in self._by_id.items() if device is None]

    def _know(self, device: Device) -> None:
        self._by_id[device.id] = device
        if device.hardware_id is not None:
            self._by_hardware[(device.product_id, device.hardware_id)] = device
        self._by_serial[(device.product_id, device.serial_number)] = device

    def _found(self, device: Device | None) -> Device | None:
        # A row read live (outside what was read up front) joins the chunk's objects.
        if device is None:
            return None
        known = self._by_id.get(device.id)
        if known is None:
            self._know(device)
            return device
        return known

    def get(self, device_id: str, *, within: str, include_owned: bool = False) -> Device | None:
        if device_id not in self._by_id:
            self._by_id[device_id] = self._found(self._live.get(device_id, within="/"))
        return self._by_id[device_id]  # the replay reads every organization's ("/")

    def find_by_hardware_id(self, product_id: str, hardware_id: str) -> Device | None:
        key = (product_id, hardware_id)
        if key not in self._by_hardware:
            self._by_hardware[key] = self._found(self._live.find_by_hardware_id(product_id, hardware_id))
        return self._by_hardware[key]

    def find_by_serial_number(self, product_id: str, serial_number: str) -> Device | None:
        key = (product_id, serial_number)
        if key not in self._by_serial:
            self._by_serial[key] = self._found(self._live.find_by_serial_number(product_id, serial_number))
        return self._by_serial[key]

    def add(self, device: Device) -> None:
        self._chunk.writes.inserts.append(_snapshot(device))
        self._know(device)

    def save_state_if(self, device: Device, previous: DeviceState) -> bool:
        # Checked when written (``ChunkUnit.write``): the chunk's objects are the rows as read.
        self._chunk.writes.states.append((_snapshot(device), previous))
        return True

    def set_hardware_id(self, device_id: str, hardware_id: str) -> None:
        device = self._by_id[device_id]
        assert device is not None
        self._by_hardware[(device.product_id, hardware_id)] = device
        self._step(lambda uow: uow.devices.set_hardware_id(device_id, hardware_id))

    def set_serial_number(self, device_id: str, serial_number: str) -> None:
        device = self._by_id[device_id]
        assert device is not None
        self._by_serial.pop((device.product_id, device.serial_number), None)
        self._by_serial[(device.product_id, serial_number)] = device
        self._step(lambda uow: uow.devices.set_serial_number(device_id, serial_number))

    def set_token(self, device_id: str, token_hash: str, at: datetime) -> None:
        device = self._by_id[device_id]
        assert device is not None
        device.token_issued_at = at
        self._step(lambda uow: uow.devices.set_token(device_id, token_hash, at))

    def _step(self, step: Callable[[UnitOfWork], None]) -> None:
        self._chunk.writes.steps.append(step)


class _ChunkRuns:
    """The test runs the chunk needs: each device's newest, and which run ids exist."""

    def __init__(
        self,
        chunk: ChunkUnit,
        uow: UnitOfWork,
        entries: Sequence[LedgerEntry],
        device_ids: list[str],
        absent_ids: list[str],
    ) -> None:
        self._chunk, self._live = chunk, uow.test_runs
        # A device that did not exist when the chunk was read has no stored runs: without
        # this, every unit the chunk enrolls cost a live latest_for_device query at its test
        # run (a third of the entries, one round trip each: the sync's largest query cost).
        self._latest: dict[str, TestRun | None] = dict.fromkeys([*device_ids, *absent_ids])
        self._latest.update(self._live.latest_for_devices(device_ids))
        run_ids = [str(e.data["run_id"]) for e in entries if e.data.get("run_id")]
        self._existing = self._live.ids_existing(run_ids)
        # The staged runs (writes.runs) by device and id: scanning the list at every test run
        # and blessing made a chunk quadratic. Rebuilt when a refused entry's runs are dropped.
        self._staged_of: dict[str, list[TestRun]] = {}
        self._staged_ids: set[str] = set()

    def recorded(self, run_id: str) -> bool:
        return run_id in self._existing or run_id in self._staged_ids

    def add(self, run: TestRun) -> None:
        self._chunk.writes.runs.append(run)
        self._staged_of.setdefault(run.device_id, []).append(run)
        self._staged_ids.add(run.id)

    def forget_staged(self) -> None:
        """writes.runs was cut back: index what is left of it again."""
        self._staged_of, self._staged_ids = {}, set()
        for run in self._chunk.writes.runs:
            self._staged_of.setdefault(run.device_id, []).append(run)
            self._staged_ids.add(run.id)

    def latest_for_device(self, device_id: str, *, since: datetime | None) -> TestRun | None:
        if device_id not in self._latest:
            self._latest[device_id] = self._live.latest_for_device(device_id, since=None)
        runs = self._staged_of.get(device_id, [])
        stored = self._latest[device_id]
        candidates = [
            r for r in [stored, *runs] if r is not None and (since is None or r.created_at >= since)
        ]
        return max(candidates, key=lambda run: (run.created_at, run.id), default=None)


class _ChunkGroups:
    """The product's groups, listed once per chunk (the factory group, the production one)."""

    def __init__(self, chunk: ChunkUnit, uow: UnitOfWork) -> None:
        self._chunk, self._live = chunk, uow.groups
        self._listed: dict[str, list[DeviceGroup]] = {}

    def list_for_product(self, product_id: str) -> list[DeviceGroup]:
        if product_id not in self._listed:
            self._listed[product_id] = self._live.list_for_product(product_id)
        added = [group for _, group in self._chunk.writes.groups if group.product_id == product_id]
        return self._listed[product_id] + added

    def add_unless_name_taken(self, group: DeviceGroup) -> bool:
        if any(g.name == group.name for g in self.list_for_product(group.product_id)):
            return False
        self._chunk.writes.groups.append(("unless_taken", group))
        return True

    def add(self, group: DeviceGroup) -> None:
        self._chunk.writes.groups.append(("add", group))


class _ChunkPool:
    """The station's pool entries of the chunk's devices, read at once."""

    def __init__(self, chunk: ChunkUnit, uow: UnitOfWork, entries: Sequence[LedgerEntry]) -> None:
        self._chunk = chunk
        ids = sorted({str(e.data["device_id"]) for e in entries if "device_id" in e.data})
        self._entries: dict[str, PoolEntry] = {p.device_id: p for p in uow.stations.pool_entries(ids)}

    def pool_entry(self, device_id: str) -> PoolEntry | None:
        return self._entries.get(device_id)

    def open_pool_entry(self, device_id: str, at: datetime) -> None:
        self._chunk.writes.steps.append(lambda uow: uow.stations.open_pool_entry(device_id, at))
