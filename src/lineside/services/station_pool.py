"""Token devices from an offline station's pool, before the station syncs.

A station with a token pool hands each new unit a device id and token the server made for it
(services.stations). The server keeps each token's keyed hash, so when such a unit connects
before its station's ledger arrives, its token is found here: the device is defined then,
under its pool id (its serial number is the id until the ledger names the unit), and goes on
to activate like any other. The ledger's replay later fills in the unit's serial number,
hardware id and line history (services.station_sync). A revoked station's unused pool
authenticates nothing: only ids its synced ledger shows it used before the revocation, or that
connected before it, keep working.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from lineside.domain.device_specs import DeviceSpec, new_device
from lineside.domain.errors import Conflict, DomainError
from lineside.domain.events import EventType, new_event
from lineside.domain.lifecycle import DeviceState
from lineside.domain.models import Device
from lineside.domain.stations import PoolEntry
from lineside.services.context import ServiceContext
from lineside.services.ports import UnitOfWork
from lineside.services.quotas import check_device_quota

log = logging.getLogger("lineside.stations")


def devices_from_pools(
    ctx: ServiceContext, token_hashes: Sequence[str], claimed_ids: Mapping[str, str | None] | None = None
) -> dict[str, Device]:
    """By token hash: the devices of the stations' pools these tokens belong to, defined now
    where the server did not hold them yet. Hashes of no pool (or of a revoked station's
    unused pool) are absent, and so is a token whose connection claims another device id
    (``claimed_ids``, by hash: an MQTT client id), which must not open its pool entry."""
    if not token_hashes:
        return {}
    with ctx.unit_of_work(write=False, snapshot=False) as uow:
        entries = uow.stations.pool_by_token_hashes(token_hashes)
    if claimed_ids is not None:
        entries = [e for e in entries if claimed_ids.get(e.token_hash) == e.device_id]
    if not entries:
        return {}
    try:
        return _open(ctx, entries)
    except Conflict:  # the same unit connected twice at once: the other connect made it
        with ctx.unit_of_work(write=False, snapshot=False) as uow:
            found, _ = uow.devices.find_by_secret_hashes([e.token_hash for e in entries], [])
        return found
    except DomainError as refused:  # the organization's quota is full: not a credential problem
        log.warning("station pool devices could not be defined: %s", refused.detail)
        return {}


def _open(ctx: ServiceContext, entries: Sequence[PoolEntry]) -> dict[str, Device]:
    opened: dict[str, Device] = {}
    with ctx.unit_of_work() as uow:
        for entry in entries:
            device = _pool_device(ctx, uow, entry)
            if device is not None:
                opened[entry.token_hash] = device
        uow.commit()
    return opened


def _pool_device(ctx: ServiceContext, uow: UnitOfWork, entry: PoolEntry) -> Device | None:
    station = uow.stations.get(entry.station_id, within="/")
    if station is None:
        return None
    if station.revoked_at is not None and entry.opened_at is None:
        log.warning("station %s is revoked: an unused pool token was refused", station.id)
        return None
    now = ctx.clock()
    device = uow.devices.get(entry.device_id, within="/")
    if device is not None and device.state is DeviceState.REVOKED:
        return None
    if device is not None and device.token_issued_at is not None:
        # It holds (or held) a token already: the pool's, found by its hash before we got
        # here, or one the server rotated or revoked since. The pool cannot bring it back.
        return None
    if device is None:  # not synced yet: defined now, named by its id until the ledger names it
        product = uow.products.get(station.product_id, within="/")
        if product is None:
            return None
        check_device_quota(ctx, uow, product.organization_id, 1)
        if not uow.stations.take_budget(station.id, 1):  # the pool is the budget: a safeguard
            return None
        uow.stations.add_made(station.id, [entry.device_id])
        device = new_device(product, DeviceSpec(serial_number=entry.device_id), now, None, entry.device_id)
        uow.devices.add(device)
        uow.events.add(
            new_event(
                EventType.DEVICE_DEFINED,
                device,
                actor=f"station:{station.id}",
                at=now,
                product_id=product.id,
                serial_number=device.serial_number,
                via="token_pool",
            )
        )
    uow.devices.set_token(device.id, entry.token_hash, now)
    uow.stations.open_pool_entry(entry.device_id, now)
    log.info("station %s: pool device %s authenticated before its ledger synced", station.id, device.id)
    return device
