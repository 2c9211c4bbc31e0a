"""Reading device rows, and the device queries of the MQTT side (credentials by hash,
presence, provisioning), kept apart from the batch and lifecycle queries of
``device_repository``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Select, bindparam, case, or_, select, tuple_, update

from lineside.adapters.db import tables as t
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
# Presence: a row only moves forward in time (a late flush from another process does not undo
# a newer one) and a revoked device keeps the state it was revoked in.
_RECORD_PRESENCE = (
    update(t.devices)
    .where(
        t.devices.c.id == bindparam("device_id"),
        t.devices.c.state != DeviceState.REVOKED.value,
        or_(t.devices.c.last_seen_at.is_(None), t.devices.c.last_seen_at <= bindparam("seen_at")),
    )
    .values(online=bindparam("is_online"), last_seen_at=bindparam("seen_at"))
)
# Many CONNECTs checked at once (the embedded broker batches those that arrive together).
_BY_TOKEN_HASHES = select(t.devices).where(t.devices.c.token_hash.in_(bindparam("hashes", expanding=True)))
_BY_MQTT_PASSWORD_HASHES = select(t.devices).where(
    t.devices.c.mqtt_password_hash.in_(bindparam("hashes", expanding=True))
)
_ACTIVATABLE = (DeviceState.DEFINED.value, DeviceState.BLESSED.value)
# Bound parameters per IN list: well under every driver's limit.
_IDS_PER_QUERY = 1000
_ACTIVATIONS_PER_QUERY = 250  # four parameters each


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
        d, p = t.devices.c, t.products.c
        found: list[tuple[Device, bool]] = []
        for start in range(0, len(device_ids), _IDS_PER_QUERY):
            query = (
                select(t.devices, p.requires_blessing.label("product_requires_blessing"))
                .join(t.products, p.id == d.product_id)
                .where(d.id.in_(device_ids[start : start + _IDS_PER_QUERY]), d.state.in_(_ACTIVATABLE))
            )
            for row in self.connection.execute(query):
                found.append((device_from_row(row), bool(row._mapping["product_requires_blessing"])))
        return found

    def activate_if_still(self, activations: Sequence[tuple[str, DeviceState, datetime]]) -> set[str]:
        # One UPDATE ... RETURNING per chunk: each row matches only in the state it was read
        # in, and takes its own time from a CASE (both need SQLite 3.35+, as RETURNING does).
        d = t.devices.c
        activated: set[str] = set()
        for start in range(0, len(activations), _ACTIVATIONS_PER_QUERY):
            chunk = activations[start : start + _ACTIVATIONS_PER_QUERY]
            previous = {device_id: state.value for device_id, state, _ in chunk}
            statement = (
                update(t.devices)
                .where(tuple_(d.id, d.state).in_(list(previous.items())))
                .values(
                    state=DeviceState.ACTIVATED.value,
                    activated_at=case({device_id: at for device_id, _, at in chunk}, value=d.id),
                )
                .returning(d.id, d.organization_id, d.product_id, d.owner_organization_id)
            )
            for device_id, organization_id, product_id, owner in self.connection.execute(statement):
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
        if not updates:
            return 0
        params = [{"device_id": i, "is_online": online, "seen_at": at} for i, online, at in updates]
        result = self.connection.execute(_RECORD_PRESENCE, params)
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
