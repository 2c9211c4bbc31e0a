"""SQL repositories of devices and their certificates.

``add_many`` is the hot path of a 100,000-device batch: it skips SQLAlchemy's per-row
processing and hands plain tuples to the driver (executemany on SQLite, COPY on PostgreSQL).
"""

from __future__ import annotations

import builtins
import functools
import json
import threading
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Row,
    and_,
    bindparam,
    false,
    func,
    insert,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.sql.elements import ColumnElement

from lineside.adapters.db import tables as t
from lineside.adapters.db.bulk_insert import insert_rows
from lineside.adapters.db.device_counts import CountKey, DeviceCountChanges
from lineside.adapters.db.device_rows import DeviceMqttQueries
from lineside.adapters.db.device_rows import device_from_row as _device
from lineside.adapters.db.engine import AUTOCOMMIT_OPTION, WRITE_OPTION
from lineside.adapters.db.pages import MAX_BRANCH_ORGANIZATIONS, Branch, branch_page, subtree_ids
from lineside.adapters.db.paging import cursor_value, encode_cursor, paged
from lineside.adapters.db.repositories import SqlRepository, owned_within
from lineside.domain.lifecycle import DeviceState
from lineside.domain.models import Certificate, Device
from lineside.services.ports import BatchUnit, DeviceFilter, DeviceIdentity, NewDevice, Page
from lineside.services.ports.devices import METADATA_SEARCH_WINDOW

_INSERT_COLUMNS = (
    "id",
    "organization_id",
    "product_id",
    "group_id",
    "batch_id",
    "serial_number",
    "mac",
    "metadata",
    "state",
    "token_hash",
    "token_issued_at",
    "claim_code_hash",
    "created_at",
    "hardware_id",
    "mqtt_password_hash",
    "mqtt_password_issued_at",
    "factory_token_id",
    *t.LIFECYCLE_COLUMNS,
)


# Every device authentication runs this: built once, it skips the statement construction
# that costs as much as the query itself.
_BY_TOKEN_HASH = select(t.devices).where(t.devices.c.token_hash == bindparam("token_hash"))


def _visible(within: str | ColumnElement[str]) -> ColumnElement[bool]:
    """Made by an organization of the subtree, or claimed into one."""
    c = t.devices.c
    return or_(owned_within(c.organization_id, within), owned_within(c.owner_organization_id, within))


def _filter_terms(filters: DeviceFilter) -> list[ColumnElement[bool]]:
    c = t.devices.c
    equal = {
        c.product_id: filters.product_id,
        c.state: filters.state.value if filters.state else None,
        c.serial_number: filters.serial_number,
        c.batch_id: filters.batch_id,
        c.group_id: filters.group_id,
        c.firmware_version: filters.firmware_version,
    }
    terms = [column == value for column, value in equal.items() if value]
    if filters.hardware_address:
        terms.append(or_(c.mac == filters.hardware_address, c.hardware_id == filters.hardware_address))
    if filters.online is not None:
        terms.append(c.online == (true() if filters.online else false()))
    if filters.claimed is not None:
        owner = c.owner_organization_id
        terms.append(owner.is_not(None) if filters.claimed else owner.is_(None))
    if filters.metadata is not None:
        name, value = filters.metadata
        terms.append(c.metadata[name].as_string() == value)
    return terms


def _maker_branches(made_here: ColumnElement[bool], filters: DeviceFilter) -> list[Branch]:
    """One organization's made devices matching ``filters``, each branch read along one
    index. A MAC-or-hardware-id search is two branches (one per index; the second leaves out
    what the first finds), as neither database reads two indexes for one ordered page."""
    address = filters.hardware_address
    if address is None:
        return [Branch(and_(made_here, *_filter_terms(filters)), _maker_index(filters))]
    c, terms = t.devices.c, _filter_terms(replace(filters, hardware_address=None))
    return [
        Branch(and_(made_here, c.mac == address, *terms), "ix_devices_organization_id_mac"),
        Branch(
            and_(made_here, c.hardware_id == address, or_(c.mac.is_(None), c.mac != address), *terms),
            "ix_devices_organization_id_hardware_id",
        ),
    ]


_OWNER_INDEX = "ix_devices_owner_organization_id_id"  # an owner's devices are few: filter them


def _maker_index(filters: DeviceFilter) -> str | None:
    """The index that reads an organization's made devices matching ``filters`` in id order
    (or, for a serial number, the few rows that have it)."""
    if filters.batch_id:
        return "ix_devices_batch_id_id"
    if filters.group_id:
        return "ix_devices_group_id_id"
    if filters.firmware_version and filters.product_id:
        return "ix_devices_product_id_firmware_version_id"
    if filters.online:
        return "ix_devices_organization_id_online_id"
    if filters.serial_number:
        # With the product too, the unique (product, serial) index finds one row by itself.
        return None if filters.product_id else "ix_devices_organization_id_serial_number"
    if filters.product_id:
        return "ix_devices_product_id_id"
    if filters.state:
        return "ix_devices_organization_id_state_id"
    return "ix_devices_organization_id_id"


def _iso_time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _sqlite_time(value: datetime | None) -> str | None:
    # The text form SQLAlchemy's SQLite DateTime type writes and reads back.
    if value is None:
        return None
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


class SqlDeviceRepository(DeviceMqttQueries, SqlRepository):
    """Every write to the devices table is here, and each tells ``counts`` what it changed
    (adapters.db.device_counts): the counters cannot miss a path."""

    def __init__(self, connection: Connection, counts: DeviceCountChanges) -> None:
        super().__init__(connection)
        self.counts = counts

    def add_many(self, devices: Iterable[NewDevice]) -> None:
        """Insert the devices as the iterable yields them (it is consumed once)."""
        tally = _Tally()
        # A batch shares a handful of timestamps: convert each once. ISO text is what COPY
        # parses anyway, and far cheaper for psycopg to send; SQLite stores its own text.
        postgres = self.connection.dialect.name == "postgresql"
        to_time = functools.cache(_iso_time if postgres else _sqlite_time)
        rows = (self._row(new, to_time) for new in map(tally.count, devices))
        insert_rows(self.connection, "devices", _INSERT_COLUMNS, rows)
        tally.report_to(self.counts)

    def _row(self, new: NewDevice, to_time: Any) -> tuple[Any, ...]:
        device = new.device
        timeline = [to_time(device.timeline.get(name)) for name in t.LIFECYCLE_COLUMNS]
        metadata = json.dumps(device.metadata, separators=(",", ":")) if device.metadata else "{}"
        return (
            device.id,
            device.organization_id,
            device.product_id,
            device.group_id,
            device.batch_id,
            device.serial_number,
            device.mac,
            metadata,
            device.state.value,
            new.token_hash,
            to_time(device.token_issued_at),
            new.claim_code_hash,
            to_time(device.created_at),
            device.hardware_id,
            new.mqtt_password_hash,
            to_time(device.mqtt_password_issued_at),
            device.factory_token_id,
            *timeline,
        )

    def get(self, device_id: str, *, within: str, include_owned: bool = False) -> Device | None:
        query = _VISIBLE_BY_ID if include_owned else _OWNED_BY_ID
        row = self.connection.execute(query, {"device_id": device_id, "within": within}).first()
        return _device(row) if row else None

    def find_by_claim_hash(self, claim_code_hash: str) -> Device | None:
        row = self._first(select(t.devices).where(t.devices.c.claim_code_hash == claim_code_hash))
        return _device(row) if row else None

    def claim_if_unclaimed(self, device_id: str, owner_id: str, at: datetime, actor: str) -> bool:
        """The one winner of concurrent claims: the update only matches an unclaimed row."""
        changed = self.connection.execute(
            update(t.devices)
            .where(t.devices.c.id == device_id, t.devices.c.owner_organization_id.is_(None))
            .values(owner_organization_id=owner_id, claimed_at=at, claimed_by=actor)
            .returning(*_COUNT_KEY)
        ).first()
        if changed is not None:
            organization_id, product_id, state = changed
            self.counts.claim_changed(organization_id, product_id, state, claimed=True)
        return changed is not None

    def move_owner(self, device_id: str, from_owner: str, to_owner: str, at: datetime, actor: str) -> bool:
        """Hand the device from one owner to another; False if ``from_owner`` no longer has it."""
        result = self.connection.execute(
            update(t.devices)
            .where(t.devices.c.id == device_id, t.devices.c.owner_organization_id == from_owner)
            .values(owner_organization_id=to_owner, claimed_at=at, claimed_by=actor)
        )
        return result.rowcount == 1

    def release_claim(self, device_id: str) -> None:
        d = t.devices.c
        changed = self.connection.execute(
            update(t.devices)
            .where(d.id == device_id, d.owner_organization_id.is_not(None))
            .values(owner_organization_id=None, claimed_at=None, claimed_by=None)
            .returning(*_COUNT_KEY)
        ).first()
        if changed is not None:
            organization_id, product_id, state = changed
            self.counts.claim_changed(organization_id, product_id, state, claimed=False)

    def delete(self, device_id: str) -> None:
        d = t.devices.c
        deleted = self.connection.execute(
            t.devices.delete().where(d.id == device_id).returning(*_COUNT_KEY, d.owner_organization_id)
        ).first()
        if deleted is not None:
            organization_id, product_id, state, owner = deleted
            self.counts.add(organization_id, product_id, state, owner is not None, -1)

    def batch_page(self, batch_id: str, after_id: str | None, limit: int) -> list[BatchUnit]:
        c = t.devices.c
        query = select(c.id, c.serial_number, c.metadata, c.claim_generation).where(c.batch_id == batch_id)
        if after_id is not None:
            query = query.where(c.id > after_id)
        rows = self.connection.execute(query.order_by(c.id).limit(limit)).all()
        return [BatchUnit(row[0], row[1], row[2], row[3]) for row in rows]

    def batch_figures(self, batch_id: str) -> list[tuple[str, bool, bool, int]]:
        """One pass over the batch's rows along its index (a batch is at most a batch's size)."""
        c = t.devices.c
        claimed = c.owner_organization_id.is_not(None)
        query = (
            select(c.state, claimed, c.online, func.count())
            .where(c.batch_id == batch_id)
            .group_by(c.state, claimed, c.online)
        )
        return [
            (state, bool(owned), bool(online), int(n))
            for state, owned, online, n in self.connection.execute(query)
        ]

    def any_activated_in_batch(self, batch_id: str) -> bool:
        query = select(t.devices.c.id).where(
            t.devices.c.batch_id == batch_id, t.devices.c.activated_at.is_not(None)
        )
        return self._first(query.limit(1)) is not None

    def set_tokens(self, token_hashes: Sequence[tuple[str, str]], at: datetime) -> None:
        """Many (device id, token hash) pairs, handed to the driver as plain tuples (the
        export of a 100,000-unit batch updates every row)."""
        if not token_hashes:
            return
        when: datetime | str | None = at
        sql = "UPDATE devices SET token_hash = %s, token_issued_at = %s WHERE id = %s"
        if self.connection.dialect.name != "postgresql":
            sql, when = sql.replace("%s", "?"), _sqlite_time(at)
        self.connection.exec_driver_sql(
            sql, [(token_hash, when, device_id) for device_id, token_hash in token_hashes]
        )

    def clear_tokens_of_batch(self, batch_id: str) -> None:
        self.connection.execute(
            update(t.devices)
            .where(t.devices.c.batch_id == batch_id)
            .values(token_hash=None, token_issued_at=None)
        )

    def set_claim_codes(self, claim_hashes: Sequence[tuple[str, str]], generation: int) -> None:
        statement = (
            update(t.devices)
            .where(t.devices.c.id == bindparam("device_id"))
            .values(claim_code_hash=bindparam("new_hash"), claim_generation=generation)
        )
        self.connection.execute(
            statement, [{"device_id": device_id, "new_hash": h} for device_id, h in claim_hashes]
        )

    def count_online(self, *, within: str, at_most: int) -> int:
        c = t.devices.c
        online = (
            select(c.id)
            .where(c.organization_id.in_(subtree_ids(self.connection, within)), c.online == true())
            .with_hint(t.devices, "INDEXED BY ix_devices_organization_id_online_id", "sqlite")
            .limit(at_most)
        )
        return int(self.connection.execute(select(func.count()).select_from(online.subquery())).scalar_one())

    def list(self, *, within: str, filters: DeviceFilter, cursor: str | None, limit: int) -> Page[Device]:
        """A page of the devices the subtree made or owns, read a page at a time
        (adapters.db.pages): per organization, the devices it made and those it owns."""
        subtree = subtree_ids(self.connection, within)
        if len(subtree) > MAX_BRANCH_ORGANIZATIONS:
            query = select(t.devices).where(_visible(within), *_filter_terms(filters))
            return paged(
                query, t.devices.c.id, cursor, limit, self._all, _device, newest_first=filters.newest_first
            )
        if filters.metadata is not None:
            return self._searched(subtree, filters, cursor, limit)
        return self._page(self._branches(subtree, filters), filters, cursor, limit)

    def _page(
        self, branches: Sequence[Branch], filters: DeviceFilter, cursor: str | None, limit: int
    ) -> Page[Device]:
        return branch_page(
            self.connection,
            t.devices,
            t.devices.c.id,
            branches,
            cursor=cursor,
            limit=limit,
            convert=_device,
            newest_first=filters.newest_first,
        )

    def _searched(
        self, subtree: Sequence[str], filters: DeviceFilter, cursor: str | None, limit: int
    ) -> Page[Device]:
        """A metadata search, which no index serves, reads at most METADATA_SEARCH_WINDOW devices per
        branch: the page holds the matches among them, and its cursor goes on after them
        (a page may hold fewer than ``limit``, or none, and still have a next one)."""
        c = t.devices.c
        after = cursor_value(c.id, cursor) if cursor is not None else None
        unsearched = self._branches(subtree, replace(filters, metadata=None))
        ends = [
            end for b in unsearched if (end := self._window_end(b, after, filters.newest_first)) is not None
        ]
        if not ends:  # every branch ends within its window: the page is all there is
            return self._page(self._branches(subtree, filters), filters, cursor, limit)
        end = max(ends) if filters.newest_first else min(ends)  # no branch reads past its window
        within_window = c.id >= end if filters.newest_first else c.id <= end
        branches = [Branch(and_(b.where, within_window), b.index) for b in self._branches(subtree, filters)]
        page = self._page(branches, filters, cursor, limit)
        return page if page.next_cursor is not None else Page(page.items, encode_cursor(str(end)))

    def _window_end(self, branch: Branch, after: Any, newest_first: bool) -> Any:
        """The id METADATA_SEARCH_WINDOW rows along ``branch`` from ``after`` (None: it ends sooner)."""
        c = t.devices.c
        query = select(c.id).where(branch.where)
        if after is not None:
            query = query.where(c.id < after if newest_first else c.id > after)
        if branch.index is not None:
            query = query.with_hint(t.devices, f"INDEXED BY {branch.index}", "sqlite")
        ordered = query.order_by(c.id.desc() if newest_first else c.id)
        return self.connection.execute(ordered.offset(METADATA_SEARCH_WINDOW - 1).limit(1)).scalar()

    def _branches(self, subtree: Sequence[str], filters: DeviceFilter) -> Sequence[Branch]:
        c = t.devices.c
        makers = [
            branch
            for org in self._makers(subtree, filters)
            for branch in _maker_branches(c.organization_id == org, filters)
        ]
        terms = _filter_terms(filters)
        not_made_here = c.organization_id.not_in(subtree)  # those are the makers' branches
        owners = [
            Branch(
                and_(c.owner_organization_id == org, not_made_here, *terms),
                "ix_devices_owner_organization_id_id",
            )
            for org in subtree
        ]
        return makers + owners

    def _makers(self, subtree: Sequence[str], filters: DeviceFilter) -> Sequence[str]:
        """The organizations whose made devices can match: a product's (or a batch's) devices
        are all its organization's, so other organizations' branches would read them for
        nothing."""
        maker: str | None
        if filters.product_id:
            query = select(t.products.c.organization_id).where(t.products.c.id == filters.product_id)
            maker = self.connection.execute(query).scalar()
        elif filters.batch_id:
            c = t.devices.c
            maker = self.connection.execute(
                select(c.organization_id).where(c.batch_id == filters.batch_id).limit(1)
            ).scalar()
        else:
            return subtree
        return [maker] if maker is not None and maker in subtree else []

    def existing_serial_numbers(self, product_id: str, serials: Iterable[str]) -> set[str]:
        """One query however many serials: an array on PostgreSQL, a JSON list on SQLite."""
        wanted = list(serials)
        if self.connection.dialect.name == "postgresql":
            sql = "SELECT serial_number FROM devices WHERE product_id = %s AND serial_number = ANY(%s)"
            parameters: tuple[Any, ...] = (product_id, wanted)
        else:
            sql = (
                "SELECT serial_number FROM devices WHERE product_id = ?"
                " AND serial_number IN (SELECT value FROM json_each(?))"
            )
            parameters = (product_id, json.dumps(wanted))
        return set(self.connection.exec_driver_sql(sql, parameters).scalars())

    def set_token(self, device_id: str, token_hash: str, at: datetime) -> None:
        self.connection.execute(
            update(t.devices)
            .where(t.devices.c.id == device_id)
            .values(token_hash=token_hash, token_issued_at=at)
        )

    def set_firmware_version(self, device_id: str, version: str, at: datetime) -> None:
        self.connection.execute(
            update(t.devices)
            .where(t.devices.c.id == device_id)
            .values(firmware_version=version, firmware_reported_at=at)
        )

    def clear_token(self, device_id: str) -> None:
        self.connection.execute(update(t.devices).where(t.devices.c.id == device_id).values(token_hash=None))

    # -- the connected factory ------------------------------------------------------------

    def add(self, device: Device) -> None:
        """One device, through SQLAlchemy rather than ``add_many``'s driver fast path, so a
        concurrent insert of the same unit surfaces as IntegrityError (a Conflict)."""
        claimed = device.owner_organization_id is not None
        self.counts.arrived(device.organization_id, device.product_id, device.state.value, claimed)
        self.connection.execute(_INSERT_ONE, _unit_row(device))

    def find_by_hardware_id(self, product_id: str, hardware_id: str) -> Device | None:
        row = self.connection.execute(_BY_HARDWARE_ID, {"product_id": product_id, "hardware_id": hardware_id})
        found = row.first()
        return _device(found) if found else None

    def find_by_serial_number(self, product_id: str, serial_number: str) -> Device | None:
        c = t.devices.c
        row = self._first(
            select(t.devices).where(c.product_id == product_id, c.serial_number == serial_number)
        )
        return _device(row) if row else None

    def set_hardware_id(self, device_id: str, hardware_id: str) -> None:
        self.connection.execute(
            update(t.devices).where(t.devices.c.id == device_id).values(hardware_id=hardware_id)
        )

    def set_serial_number(self, device_id: str, serial_number: str) -> None:
        self.connection.execute(
            update(t.devices).where(t.devices.c.id == device_id).values(serial_number=serial_number)
        )

    def set_group(self, device_ids: Sequence[str], group_id: str) -> None:
        self.connection.execute(
            update(t.devices).where(t.devices.c.id.in_(device_ids)).values(group_id=group_id)
        )

    def save_state_if(self, device: Device, previous: DeviceState) -> bool:
        """Write the device's lifecycle (state, group, timeline) only while the row is still
        in ``previous``: of concurrent transitions of one device, exactly one matches (the
        others get False)."""
        changed = self.connection.execute(_SAVE_STATE_IF, _state_row(device, previous)).first()
        if changed is None:
            return False
        organization_id, product_id, owner = changed
        self.counts.moved(organization_id, product_id, owner is not None, previous.value, device.state.value)
        return True

    # -- a chunk of a station's ledger (services.station_chunk) -----------------------------

    def find_by_ids(self, device_ids: Sequence[str]) -> builtins.list[Device]:
        return self._find_where(t.devices.c.id, device_ids)

    def find_by_hardware_ids(self, product_id: str, hardware_ids: Sequence[str]) -> builtins.list[Device]:
        return self._find_where(t.devices.c.hardware_id, hardware_ids, product_id)

    def find_by_serial_numbers(self, product_id: str, serials: Sequence[str]) -> builtins.list[Device]:
        return self._find_where(t.devices.c.serial_number, serials, product_id)

    def _find_where(
        self, column: Any, values: Sequence[str], product_id: str | None = None
    ) -> builtins.list[Device]:
        if not values:
            return []
        query = select(t.devices).where(self._one_of(column, values))
        if product_id is not None:
            query = query.where(t.devices.c.product_id == product_id)
        return [_device(row) for row in self.connection.execute(query)]

    def add_units(self, devices: Sequence[Device]) -> None:
        """``add`` of each device, by ``add_many``'s bulk insert (COPY on PostgreSQL)."""
        self.add_many(NewDevice(device) for device in devices)

    def save_states_if(self, changes: Sequence[tuple[Device, DeviceState]]) -> bool:
        """``save_state_if`` of each (device, previous), in order, as one executemany: one
        device may move more than once. False (and nothing counted) when any row was not in
        its ``previous`` state, so the caller must roll back."""
        if not changes:
            return True
        rows = [_state_row(device, previous) for device, previous in changes]
        if self.connection.execute(_SAVE_STATE_IF_MANY, rows).rowcount != len(rows):
            return False
        for device, previous in changes:
            claimed = device.owner_organization_id is not None
            self.counts.moved(
                device.organization_id, device.product_id, claimed, previous.value, device.state.value
            )
        return True


def _unit_row(device: Device) -> dict[str, Any]:
    return {
        "id": device.id,
        "organization_id": device.organization_id,
        "product_id": device.product_id,
        "group_id": device.group_id,
        "batch_id": device.batch_id,
        "serial_number": device.serial_number,
        "mac": device.mac,
        "metadata": device.metadata,
        "state": device.state.value,
        "created_at": device.created_at,
        "hardware_id": device.hardware_id,
        "factory_token_id": device.factory_token_id,
        **{name: device.timeline.get(name) for name in t.LIFECYCLE_COLUMNS},
    }


def _state_row(device: Device, previous: DeviceState) -> dict[str, Any]:
    return {
        "device_id": device.id,
        "previous": previous.value,
        "new_state": device.state.value,
        "new_group_id": device.group_id,
        "new_factory_token_id": device.factory_token_id,
        **{f"new_{name}": device.timeline.get(name) for name in t.LIFECYCLE_COLUMNS},
    }


# The factory line's statements, built once (see _BY_TOKEN_HASH).
_INSERT_ONE = insert(t.devices)
_BY_ID = select(t.devices).where(t.devices.c.id == bindparam("device_id"))
_OWNED_BY_ID = _BY_ID.where(owned_within(t.devices.c.organization_id, bindparam("within")))
_VISIBLE_BY_ID = _BY_ID.where(_visible(bindparam("within")))
_BY_HARDWARE_ID = select(t.devices).where(
    t.devices.c.product_id == bindparam("product_id"), t.devices.c.hardware_id == bindparam("hardware_id")
)
_SAVE_STATE_IF_MANY = (
    update(t.devices)
    .where(t.devices.c.id == bindparam("device_id"), t.devices.c.state == bindparam("previous"))
    .values(
        state=bindparam("new_state"),
        group_id=bindparam("new_group_id"),
        factory_token_id=bindparam("new_factory_token_id"),
        **{name: bindparam(f"new_{name}") for name in t.LIFECYCLE_COLUMNS},
    )
)
_SAVE_STATE_IF = _SAVE_STATE_IF_MANY.returning(
    t.devices.c.organization_id, t.devices.c.product_id, t.devices.c.owner_organization_id
)
# What a device's counter is keyed by, as UPDATE/DELETE ... RETURNING gives it back.
_COUNT_KEY = (t.devices.c.organization_id, t.devices.c.product_id, t.devices.c.state)


class _Tally:
    """Counts a batch's rows per counter key as they stream by. The devices of a batch almost
    always share one key, so a run of the same key costs identity checks, not hashing."""

    def __init__(self) -> None:
        self._totals: dict[CountKey, int] = {}
        self._run: tuple[str, str, DeviceState, bool] | None = None
        self._run_length = 0

    def count(self, new: NewDevice) -> NewDevice:
        device, run = new.device, self._run
        claimed = device.owner_organization_id is not None
        if (
            run is None
            or device.organization_id is not run[0]
            or device.product_id is not run[1]
            or device.state is not run[2]
            or claimed is not run[3]
        ):
            self._end_run()
            self._run = (device.organization_id, device.product_id, device.state, claimed)
        self._run_length += 1
        return new

    def report_to(self, counts: DeviceCountChanges) -> None:
        self._end_run()
        for key, devices in self._totals.items():
            counts.arrived(key.organization_id, key.product_id, key.state, key.claimed, devices)

    def _end_run(self) -> None:
        if self._run is not None and self._run_length:
            organization_id, product_id, state, claimed = self._run
            key = CountKey(organization_id, product_id, state.value, claimed)
            self._totals[key] = self._totals.get(key, 0) + self._run_length
        self._run_length = 0


class SqlDeviceTokenLookup:
    """Device reads by the token's keyed hash, outside any unit of work.

    ``find_by_token_hash`` takes a pooled connection per call. ``identity_by_token_hash``,
    behind every ``GET /device/v1/me``, keeps one driver connection per thread (in practice
    the event loop's: the route runs there) in autocommit and sends one prebuilt narrow
    query: no pool checkout, no transaction, no row processing but for six values.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        # One statement, no transaction: nothing to BEGIN or roll back (engine.py skips
        # BEGIN on SQLite; PostgreSQL's driver is put in autocommit).
        self._options: dict[str, Any] = {WRITE_OPTION: False, AUTOCOMMIT_OPTION: True}
        if engine.dialect.name != "sqlite":
            self._options["isolation_level"] = "AUTOCOMMIT"
        compiled = _IDENTITY.compile(dialect=engine.dialect)
        self._identity_sql, self._positional = str(compiled), compiled.positional
        self._held = threading.local()

    def find_by_token_hash(self, token_hash: str) -> Device | None:
        with self._engine.connect().execution_options(**self._options) as connection:
            row = connection.execute(_BY_TOKEN_HASH, {"token_hash": token_hash}).first()
        return _device(row) if row else None

    def identity_by_token_hash(self, token_hash: str) -> DeviceIdentity | None:
        try:
            row = self._fetch_identity(token_hash)
        except self._engine.dialect.loaded_dbapi.Error:
            self._drop_held()  # a connection the server closed: once more, on a new one
            row = self._fetch_identity(token_hash)
        if row is None:
            return None
        device_id, product_id, serial_number, state, online, last_seen_at = row
        seen = last_seen_at if last_seen_at is None or isinstance(last_seen_at, datetime) else None
        if isinstance(last_seen_at, str):  # SQLite keeps naive UTC text
            seen = datetime.fromisoformat(last_seen_at).replace(tzinfo=UTC)
        return DeviceIdentity(
            str(device_id), str(product_id), serial_number, DeviceState(state), bool(online), seen
        )

    def _fetch_identity(self, token_hash: str) -> tuple[Any, ...] | None:
        cursor = self._held_connection().cursor()
        try:
            parameters = (token_hash,) if self._positional else {"token_hash": token_hash}
            cursor.execute(self._identity_sql, parameters)
            row: tuple[Any, ...] | None = cursor.fetchone()
            return row
        finally:
            cursor.close()

    def _held_connection(self) -> Any:
        held = getattr(self._held, "connection", None)
        if held is None:
            held = self._engine.raw_connection()
            if self._engine.dialect.name != "sqlite":
                held.driver_connection.autocommit = True  # type: ignore[union-attr]
            self._held.connection = held
        return held

    def _drop_held(self) -> None:
        held = getattr(self._held, "connection", None)
        self._held.connection = None
        if held is not None:
            held.invalidate()


_IDENTITY = select(
    t.devices.c.id,
    t.devices.c.product_id,
    t.devices.c.serial_number,
    t.devices.c.state,
    t.devices.c.online,
    t.devices.c.last_seen_at,
).where(t.devices.c.token_hash == bindparam("token_hash"))


def _certificate(row: Row[Any]) -> Certificate:
    m = row._mapping
    return Certificate(**{name: m[name] for name in Certificate.__dataclass_fields__})


_INSERT_CERTIFICATE = insert(t.certificates)


def _certificate_row(certificate: Certificate) -> dict[str, Any]:
    return {name: getattr(certificate, name) for name in Certificate.__dataclass_fields__}


class SqlCertificateRepository(SqlRepository):
    def add(self, certificate: Certificate) -> None:
        self.connection.execute(_INSERT_CERTIFICATE, _certificate_row(certificate))

    def add_many(self, certificates: Sequence[Certificate]) -> None:
        """One executemany: a fleet's first connections register a batch at a time."""
        if certificates:
            self.connection.execute(_INSERT_CERTIFICATE, [_certificate_row(c) for c in certificates])

    def list_for_device(self, device_id: str) -> list[Certificate]:
        query = select(t.certificates).where(t.certificates.c.device_id == device_id)
        return [_certificate(row) for row in self._all(query.order_by(t.certificates.c.id))]

    def revoke_active(self, device_id: str, at: datetime) -> list[Certificate]:
        c = t.certificates.c
        active = self._all(select(t.certificates).where(c.device_id == device_id, c.revoked_at.is_(None)))
        if active:
            self.connection.execute(
                update(t.certificates)
                .where(c.device_id == device_id, c.revoked_at.is_(None))
                .values(revoked_at=at)
            )
        return [_certificate(row) for row in active]

    def list_revoked(self, product_id: str) -> list[Certificate]:
        """The product CA's revoked certificates (its CRL): not those makers' CAs signed."""
        c = t.certificates.c
        query = select(t.certificates).where(
            c.product_id == product_id, c.revoked_at.is_not(None), c.authority_id.is_(None)
        )
        return [_certificate(row) for row in self._all(query.order_by(c.id))]

    def revoke_issued(self, authority_id: str, serials: Sequence[str], at: datetime) -> list[str]:
        c = t.certificates.c
        if not serials:
            return []
        revoked = self.connection.execute(
            update(t.certificates)
            .where(
                c.authority_id == authority_id, c.issuer_serial_hex.in_(list(serials)), c.revoked_at.is_(None)
            )
            .values(revoked_at=at)
            .returning(c.device_id)
        )
        return sorted({device_id for (device_id,) in revoked})
