"""Reading device rows, and the device queries of the MQTT side (credentials by hash,
presence, provisioning), kept apart from the batch and lifecycle queries of
``device_repository``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Dialect,
    Row,
    Select,
    String,
    Update,
    bindparam,
    column,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeEngine

from lineside.adapters.db import tables as t
from lineside.adapters.db.bulk_insert import bind_processor
from lineside.adapters.db.device_counts import DeviceCountChanges
from lineside.adapters.db.repositories import SqlRepository
from lineside.domain.lifecycle import DeviceState
from lineside.domain.models import AuthorityStatus, Device

# A certificate a maker's CA signed counts only while that CA is verified (not disabled).
_TRUSTED_ISSUER = or_(
    t.certificates.c.authority_id.is_(None),
    t.certificates.c.authority_id.in_(
        select(t.certificate_authorities.c.id).where(
            t.certificate_authorities.c.status == AuthorityStatus.VERIFIED.value
        )
    ),
)
_BY_ACTIVE_CERTIFICATES = (
    select(t.devices, t.certificates.c.fingerprint_sha256)
    .join(t.certificates, t.certificates.c.device_id == t.devices.c.id)
    .where(
        t.certificates.c.fingerprint_sha256.in_(bindparam("hashes", expanding=True)),
        t.certificates.c.revoked_at.is_(None),
        _TRUSTED_ISSUER,
    )
)
# Many CONNECTs checked at once (the embedded broker batches those that arrive together).
_BY_TOKEN_HASHES = select(t.devices).where(t.devices.c.token_hash.in_(bindparam("hashes", expanding=True)))
_BY_MQTT_PASSWORD_HASHES = select(t.devices).where(
    t.devices.c.mqtt_password_hash.in_(bindparam("hashes", expanding=True))
)
# Bound parameters per IN list: well under every driver's limit.
_IDS_PER_QUERY = 1000


def device_from_row(row: Row[Any]) -> Device:
    m = row._mapping
    return Device(
        id=m["id"],
        organization_id=m["organization_id"],
        product_id=m["product_id"],
        group_id=m["group_id"],
        batch_id=m["batch_id"],
        serial_number=m["serial_number"],
        mac=m["mac"],
        metadata=m["metadata"],
        state=DeviceState(m["state"]),
        owner_organization_id=m["owner_organization_id"],
        token_issued_at=m["token_issued_at"],
        created_at=m["created_at"],
        timeline={name: m[name] for name in t.LIFECYCLE_COLUMNS},
        claimed_at=m["claimed_at"],
        claim_generation=m["claim_generation"],
        has_claim_code=m["claim_code_hash"] is not None,
        hardware_id=m["hardware_id"],
        factory_token_id=m["factory_token_id"],
        firmware_version=m["firmware_version"],
        firmware_reported_at=m["firmware_reported_at"],
        mqtt_password_issued_at=m["mqtt_password_issued_at"],
        online=bool(m["online"]),
        last_seen_at=m["last_seen_at"],
        provisioned_at=m["provisioned_at"],
    )


# -- the presence flush: a whole window per statement (services.presence) ---------------------
# A flush writes the presence of thousands of devices and activates those connecting for the
# first time. Each statement below takes all of its rows in one round trip and is compiled
# once, however many rows: an executemany of one-row UPDATEs cost a round trip per device on
# PostgreSQL, and a statement built per chunk (an IN list of pairs, a CASE of times) cost
# more to compile than to run.


class _BoundRows:
    """Rows bound as one parameter and read as the columns of a table ``v``: parallel arrays on
    PostgreSQL (``unnest(:a, :b) AS v(a, b)``), one JSON array of rows on SQLite
    (``json_each(:rows) AS v``, each value read with ``json_extract``; UPDATE ... FROM needs
    SQLite 3.33+, and RETURNING 3.35+)."""

    def __init__(self, **columns: TypeEngine[Any]) -> None:
        self._types = columns
        arrays = [bindparam(name, type_=ARRAY(type_)) for name, type_ in columns.items()]
        named = [column(name, type_) for name, type_ in columns.items()]
        self._unnest = func.unnest(*arrays).table_valued(*named).render_derived(name="v")
        self._json = func.json_each(bindparam("rows")).table_valued("value").alias("v")

    def columns(self, dialect_name: str) -> list[ColumnElement[Any]]:
        if dialect_name == "postgresql":
            return [self._unnest.c[name] for name in self._types]
        value = self._json.c.value
        return [
            func.json_extract(value, f"$[{i}]", type_=type_) for i, type_ in enumerate(self._types.values())
        ]

    def params(self, dialect: Dialect, rows: Sequence[Sequence[Any]]) -> dict[str, Any]:
        if dialect.name == "postgresql":
            return {name: [row[i] for row in rows] for i, name in enumerate(self._types)}
        # SQL functions get no bind processing: each value as SQLAlchemy would bind it to its
        # column (the stored text of a time, so comparisons with stored times hold).
        processors = [bind_processor(type_, dialect) for type_ in self._types.values()]
        return {
            "rows": json.dumps([[bind(v) for bind, v in zip(processors, row, strict=True)] for row in rows])
        }


_DIALECTS = ("postgresql", "sqlite")
_IDS = _BoundRows(device_id=t.Uuid)
_PRESENCE = _BoundRows(device_id=t.Uuid, is_online=Boolean(), seen_at=t.UtcDateTime())
_ACTIVATIONS = _BoundRows(device_id=t.Uuid, previous=String(), activated_at=t.UtcDateTime())
_ACTIVATABLE = (DeviceState.DEFINED.value, DeviceState.BLESSED.value)


def _activation_candidates(dialect_name: str) -> Select[Any]:
    d, p = t.devices.c, t.products.c
    return (
        select(t.devices, p.requires_blessing.label("product_requires_blessing"))
        .join(t.products, p.id == d.product_id)
        .where(d.id.in_(select(*_IDS.columns(dialect_name))), d.state.in_(_ACTIVATABLE))
    )


def _activate(dialect_name: str) -> Update:
    """Each device only while still in the state it was read in: of racing flushes, one wins it."""
    d = t.devices.c
    device_id, previous, activated_at = _ACTIVATIONS.columns(dialect_name)
    return (
        update(t.devices)
        .where(d.id == device_id, d.state == previous)
        .values(state=DeviceState.ACTIVATED.value, activated_at=activated_at)
        .returning(d.id, d.organization_id, d.product_id, d.owner_organization_id)
    )


def _record_presence(dialect_name: str) -> Update:
    """A row only moves forward in time (a late flush from another process does not undo a
    newer one) and a revoked device keeps the state it was revoked in."""
    d = t.devices.c
    device_id, is_online, seen_at = _PRESENCE.columns(dialect_name)
    return (
        update(t.devices)
        .where(
            d.id == device_id,
            d.state != DeviceState.REVOKED.value,
            or_(d.last_seen_at.is_(None), d.last_seen_at <= seen_at),
        )
        .values(online=is_online, last_seen_at=seen_at)
    )


_ACTIVATION_CANDIDATES = {name: _activation_candidates(name) for name in _DIALECTS}
_ACTIVATE = {name: _activate(name) for name in _DIALECTS}
_RECORD_PRESENCE = {name: _record_presence(name) for name in _DIALECTS}
# PostgreSQL locks rows as an UPDATE's join reaches them, in an order of the plan's choosing;
# presence locks its rows in id order first, so two processes flushing overlapping windows
# queue instead of deadlocking (ORDER BY ... FOR NO KEY UPDATE locks the rows as sorted; an
# UPDATE takes the same lock). SQLite has one writer at a time: nothing to order there.
_LOCK_IN_ID_ORDER = (
    select(t.devices.c.id)
    .where(t.devices.c.id.in_(select(*_IDS.columns("postgresql"))))
    .order_by(t.devices.c.id)
    .with_for_update(key_share=True)
)


class DeviceMqttQueries(SqlRepository):
    counts: DeviceCountChanges  # set by SqlDeviceRepository

    def find_by_secret_hashes(
        self, token_hashes: Sequence[str], mqtt_password_hashes: Sequence[str]
    ) -> tuple[dict[str, Device], dict[str, Device]]:
        by_token = self._by_hashes(_BY_TOKEN_HASHES, token_hashes, "token_hash")
        by_password = self._by_hashes(_BY_MQTT_PASSWORD_HASHES, mqtt_password_hashes, "mqtt_password_hash")
        return by_token, by_password

    def _by_hashes(self, statement: Select[Any], hashes: Sequence[str], column: str) -> dict[str, Device]:
        found: dict[str, Device] = {}
        for start in range(0, len(hashes), _IDS_PER_QUERY):
            chunk = list(hashes[start : start + _IDS_PER_QUERY])
            for row in self.connection.execute(statement, {"hashes": chunk}):
                found[row._mapping[column]] = device_from_row(row)
        return found

    def find_by_active_certificates(self, fingerprints: Sequence[str]) -> dict[str, Device]:
        return self._by_hashes(_BY_ACTIVE_CERTIFICATES, fingerprints, "fingerprint_sha256")

    def credential_proofs(self, device_ids: Sequence[str]) -> dict[str, set[str]]:
        if not device_ids:
            return {}
        d, c = t.devices.c, t.certificates.c
        proofs: dict[str, set[str]] = {}
        rows = self.connection.execute(
            select(d.id, d.token_hash, d.mqtt_password_hash).where(
                d.id.in_(device_ids), d.state != DeviceState.REVOKED.value
            )
        )
        for device_id, token_hash, password_hash in rows:
            proofs[device_id] = {proof for proof in (token_hash, password_hash) if proof}
        certificates = self.connection.execute(
            select(c.device_id, c.fingerprint_sha256).where(
                c.device_id.in_(list(proofs)), c.revoked_at.is_(None), _TRUSTED_ISSUER
            )
        )
        for device_id, fingerprint in certificates:
            proofs[device_id].add(fingerprint)
        return proofs

    def set_mqtt_password(self, device_id: str, password_hash: str, at: datetime) -> None:
        self._set(device_id, mqtt_password_hash=password_hash, mqtt_password_issued_at=at)

    def clear_mqtt_password(self, device_id: str) -> None:
        self._set(device_id, mqtt_password_hash=None)

    def activation_candidates(self, device_ids: Sequence[str]) -> list[tuple[Device, bool]]:
        """The devices of ``device_ids`` that are defined or blessed, each with its product's
        ``requires_blessing``."""
        if not device_ids:
            return []
        dialect = self.connection.dialect
        params = _IDS.params(dialect, [(device_id,) for device_id in device_ids])
        rows = self.connection.execute(_ACTIVATION_CANDIDATES[dialect.name], params)
        return [(device_from_row(row), bool(row.product_requires_blessing)) for row in rows]

    def activate_if_still(self, activations: Sequence[tuple[str, DeviceState, datetime]]) -> set[str]:
        if not activations:
            return set()
        dialect = self.connection.dialect
        previous = {device_id: state.value for device_id, state, _ in activations}
        params = _ACTIVATIONS.params(dialect, [(i, state.value, at) for i, state, at in activations])
        activated: set[str] = set()
        for device_id, organization_id, product_id, owner in self.connection.execute(
            _ACTIVATE[dialect.name], params
        ):
            activated.add(device_id)
            self.counts.moved(
                organization_id,
                product_id,
                owner is not None,
                previous[device_id],
                DeviceState.ACTIVATED.value,
            )
        return activated

    def record_presence(self, updates: Sequence[tuple[str, bool, datetime]]) -> int:
        """One statement for all of ``updates``; on PostgreSQL their rows are locked in id
        order first."""
        if not updates:
            return 0
        dialect = self.connection.dialect
        if dialect.name == "postgresql":
            ids = _IDS.params(dialect, [(device_id,) for device_id, _, _ in updates])
            self.connection.execute(_LOCK_IN_ID_ORDER, ids)
        result = self.connection.execute(_RECORD_PRESENCE[dialect.name], _PRESENCE.params(dialect, updates))
        return max(result.rowcount, 0)

    def set_provisioned(self, device_id: str, at: datetime | None) -> None:
        self._set(device_id, provisioned_at=at)

    def set_provisioned_if_not(self, device_id: str, at: datetime) -> bool:
        d = t.devices.c
        result = self.connection.execute(
            update(t.devices).where(d.id == device_id, d.provisioned_at.is_(None)).values(provisioned_at=at)
        )
        return result.rowcount == 1

    def _set(self, device_id: str, **values: Any) -> None:
        self.connection.execute(update(t.devices).where(t.devices.c.id == device_id).values(**values))
