"""In-memory fakes of the ports, for service-level tests that need no database.

A ``FakeDatabase`` holds plain Python tables; ``FakeUnitOfWork`` works on a copy of them and
puts the copy back on ``commit()``, so a use case that raises half way changes nothing, as a
rolled-back transaction would. The repositories keep the SQL ones' rules that use cases lean
on (organization subtrees, unique serial numbers, conditional updates that one caller wins);
``tests/integration/test_repository_contracts.py`` runs the same assertions on these and on
SQLite and PostgreSQL, so a fake cannot drift from the real thing unnoticed.

What is not faked (deploying firmware, webhooks, MQTT presence and provisioning) belongs to the integration
tier: reaching for it here fails loudly instead of returning nothing.
"""

from __future__ import annotations

import builtins
import copy
import itertools
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Self, TypeVar, cast

from lineside.adapters.factory_pki import X509Inspector
from lineside.adapters.station_keys import Ed25519StationKeys
from lineside.domain.errors import Conflict, InvalidInput
from lineside.domain.events import DomainEvent
from lineside.domain.factory import FactoryToken, ProductionToken, TestRun
from lineside.domain.lifecycle import STATE_TIMESTAMP_FIELD, DeviceState
from lineside.domain.metadata import MetadataField
from lineside.domain.models import (
    ApiKey,
    AuthorityStatus,
    Certificate,
    CertificateAuthorityRecord,
    Device,
    DeviceGroup,
    FirmwareRelease,
    GroupKind,
    Organization,
    Product,
    RegistrationIdentity,
    RegistrationPolicy,
    Role,
    StaticTokenBatch,
    User,
)
from lineside.domain.secret_tokens import SecretHasher
from lineside.domain.stations import PoolEntry
from lineside.domain.transfers import DeviceTransfer
from lineside.services.context import ServiceConfig, ServiceContext
from lineside.services.ports import (
    ActivityCount,
    BatchUnit,
    DeviceCount,
    DeviceFilter,
    DeviceIdentity,
    EventFilter,
    Measure,
    NewDevice,
    Page,
    Slot,
    UnitOfWork,
    UnitOfWorkFactory,
    WebhookAdapters,
)

T = TypeVar("T")
LIFECYCLE_FIELDS = tuple(STATE_TIMESTAMP_FIELD.values())
CONCURRENT_CHANGE = "The change conflicts with another one made at the same time."


class NotFaked:
    """Stands in for what the fakes leave to the integration tier."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str) -> Any:
        raise AssertionError(
            f"{self._name}.{attribute} is not faked: test this with the integration tier "
            "(tests/integration), on SQLite and PostgreSQL."
        )


def paged_by_id(
    items: Iterable[T], key: Callable[[T], str], cursor: str | None, limit: int, *, newest_first: bool = False
) -> Page[T]:
    """What ``adapters.db.paging`` does: ascending (or descending) keys, ``limit`` at a time,
    an opaque cursor."""
    ordered = sorted(items, key=key, reverse=newest_first)
    if cursor is not None:
        if not (len(cursor) == 32 and all(c in "0123456789abcdef" for c in cursor)):
            raise InvalidInput("The cursor is not one this server handed out.")
        ordered = [
            item
            for item in ordered
            if (key(item).replace("-", "") < cursor if newest_first else key(item).replace("-", "") > cursor)
        ]
    page = ordered[:limit]
    more = len(ordered) > limit
    return Page(page, key(page[-1]).replace("-", "") if more and page else None)


@dataclass
class DeviceRow:
    """A device as the table holds it: the domain object and the hashes it never carries."""

    device: Device
    token_hash: str | None = None
    claim_code_hash: str | None = None
    mqtt_password_hash: str | None = None


@dataclass
class Tables:
    organizations: dict[str, Organization] = field(default_factory=dict)
    api_keys: dict[str, tuple[ApiKey, str]] = field(default_factory=dict)
    products: dict[str, Product] = field(default_factory=dict)
    groups: dict[str, DeviceGroup] = field(default_factory=dict)
    devices: dict[str, DeviceRow] = field(default_factory=dict)
    certificates: dict[str, Certificate] = field(default_factory=dict)
    events: list[DomainEvent] = field(default_factory=list)
    users: dict[str, tuple[User, str]] = field(default_factory=dict)
    memberships: dict[tuple[str, str], Role] = field(default_factory=dict)
    sessions: dict[str, tuple[str, datetime, datetime | None]] = field(default_factory=dict)
    invitations: dict[str, dict[str, Any]] = field(default_factory=dict)
    static_batches: dict[str, StaticTokenBatch] = field(default_factory=dict)
    tombstones: dict[str, tuple[str, datetime]] = field(default_factory=dict)
    factory_tokens: dict[str, tuple[FactoryToken, str]] = field(default_factory=dict)
    test_runs: list[TestRun] = field(default_factory=list)
    production_tokens: dict[str, tuple[ProductionToken, str]] = field(default_factory=dict)
    releases: dict[str, FirmwareRelease] = field(default_factory=dict)
    transfers: dict[str, tuple[DeviceTransfer, str]] = field(default_factory=dict)
    activity: list[tuple[str, ActivityCount]] = field(default_factory=list)  # (organization id, count)
    authorities: dict[str, CertificateAuthorityRecord] = field(default_factory=dict)
    authority_extras: dict[str, dict[str, Any]] = field(default_factory=dict)

    def subtree(self, within: str) -> set[str]:
        return {org.id for org in self.organizations.values() if org.path.startswith(within)}


class FakeOrganizations:
    def __init__(self, tables: Tables) -> None:
        self._t = tables

    def add(self, organization: Organization) -> None:
        if organization.id in self._t.organizations:
            raise Conflict(CONCURRENT_CHANGE)
        self._t.organizations[organization.id] = organization

    def get(self, organization_id: str, *, within: str) -> Organization | None:
        found = self._t.organizations.get(organization_id)
        return found if found is not None and found.path.startswith(within) else None

    def list(self, *, within: str) -> list[Organization]:
        return sorted(
            (org for org in self._t.organizations.values() if org.path.startswith(within)),
            key=lambda org: org.path,
        )

    def set_device_quota(self, organization_id: str, quota: int | None) -> None:
        org = self._t.organizations[organization_id]
        self._t.organizations[organization_id] = replace(org, device_quota=quota)


class FakeApiKeys:
    def __init__(self, tables: Tables) -> None:
        self._t = tables

    def add(self, key: ApiKey, key_hash: str) -> None:
        self._t.api_keys[key.id] = (key, key_hash)

    def find_active_by_hash(self, key_hash: str) -> tuple[ApiKey, Organization] | None:
        for key, stored in self._t.api_keys.values():
            if stored == key_hash and key.revoked_at is None:
                return key, self._t.organizations[key.organization_id]
        return None

    def get(self, key_id: str, *, within: str) -> ApiKey | None:
        found = self._t.api_keys.get(key_id)
        return found[0] if found and found[0].organization_id in self._t.subtree(within) else None

    def list(self, *, within: str) -> list[ApiKey]:
        subtree = self._t.subtree(within)
        keys = [key for key, _ in self._t.api_keys.values() if key.organization_id in subtree]
        return sorted(keys, key=lambda key: key.id)

    def revoke(self, key_id: str, at: datetime) -> None:
        key, stored = self._t.api_keys[key_id]
        self._t.api_keys[key_id] = (replace(key, revoked_at=at), stored)


class FakeProducts:
    def __init__(self, tables: Tables) -> None:
        self._t = tables

    def add(self, product: Product) -> None:
        if self.name_taken(product.organization_id, product.name):
            raise Conflict(CONCURRENT_CHANGE)
        self._t.products[product.id] = product

    def get(self, product_id: str, *, within: str) -> Product | None:
        found = self._t.products.get(product_id)
        return found if found and found.organization_id in self._t.subtree(within) else None

    def list(self, *, within: str, cursor: str | None, limit: int) -> Page[Product]:
        subtree = self._t.subtree(within)
        mine = (p for p in self._t.products.values() if p.organization_id in subtree)
        return paged_by_id(mine, lambda p: p.id, cursor, limit)

    def name_taken(self, organization_id: str, name: str) -> bool:
        return any(p.organization_id == organization_id and p.name == name for p in self._t.products.values())

    def set_requires_blessing(self, product_id: str, requires_blessing: bool) -> None:
        product = self._t.products[product_id]
        self._t.products[product_id] = replace(product, requires_blessing=requires_blessing)

    def set_registration(
        self,
        product_id: str,
        policy: RegistrationPolicy,
        identity: RegistrationIdentity,
        reregistration: bool,
    ) -> None:
        product = self._t.products[product_id]
        changed = replace(
            product, registration_policy=policy, registration_identity=identity, reregistration=reregistration
        )
        self._t.products[product_id] = changed

    def set_definition(self, product_id: str, name: str, metadata_fields: Sequence[MetadataField]) -> None:
        product = self._t.products[product_id]
        if name != product.name and self.name_taken(product.organization_id, name):
            raise Conflict(CONCURRENT_CHANGE)  # the SQL adapters' unique (organization, name)
        self._t.products[product_id] = replace(product, name=name, metadata_fields=list(metadata_fields))


class FakeGroups:
    def __init__(self, tables: Tables) -> None:
        self._t = tables

    def add(self, group: DeviceGroup) -> None:
        if not self.add_unless_name_taken(group):
            raise Conflict(CONCURRENT_CHANGE)

    def add_unless_name_taken(self, group: DeviceGroup) -> bool:
        if self.name_taken(group.product_id, group.name):
            return False
        self._t.groups[group.id] = group
        return True

    def list_for_product(self, product_id: str) -> list[DeviceGroup]:
        return sorted((g for g in self._t.groups.values() if g.product_id == product_id), key=lambda g: g.id)

    def name_taken(self, product_id: str, name: str) -> bool:
        return any(g.product_id == product_id and g.name == name for g in self._t.groups.values())


def _as_stored(device: Device) -> Device:
    """A device as a read gives it back: every lifecycle field present, its own dicts."""
    timeline = {name: device.timeline.get(name) for name in LIFECYCLE_FIELDS}
    return replace(device, timeline=timeline, metadata=dict(device.metadata))


class FakeDevices:
    """The device roles the use cases under service tests need (catalog, lifecycle,
    credentials, ownership, static-token units)."""

    def __init__(self, tables: Tables) -> None:
        self._t = tables

    # -- catalog ----------------------------------------------------------------------------

    def add(self, device: Device) -> None:
        self.add_many([NewDevice(device)])

    def add_many(self, devices: Iterable[NewDevice]) -> None:
        for new in devices:
            device = new.device
            if self._clashes(new):
                raise Conflict(CONCURRENT_CHANGE)
            stored = replace(_as_stored(device), has_claim_code=new.claim_code_hash is not None)
            self._t.devices[device.id] = DeviceRow(
                stored, new.token_hash, new.claim_code_hash, new.mqtt_password_hash
            )

    def get(self, device_id: str, *, within: str, include_owned: bool = False) -> Device | None:
        row = self._t.devices.get(device_id)
        if row is None:
            return None
        subtree = self._t.subtree(within)
        device = row.device
        visible = device.organization_id in subtree or (
            include_owned and device.owner_organization_id in subtree
        )
        return _as_stored(device) if visible else None

    def list(self, *, within: str, filters: DeviceFilter, cursor: str | None, limit: int) -> Page[Device]:
        subtree = self._t.subtree(within)
        matching = [
            _as_stored(row.device)
            for row in self._t.devices.values()
            if (row.device.organization_id in subtree or row.device.owner_organization_id in subtree)
            and _matches(row.device, filters)
        ]
        return paged_by_id(matching, lambda d: d.id, cursor, limit, newest_first=filters.newest_first)

    def existing_serial_numbers(self, product_id: str, serials: Iterable[str]) -> set[str]:
        wanted = set(serials)
        return {
            row.device.serial_number
            for row in self._t.devices.values()
            if row.device.product_id == product_id and row.device.serial_number in wanted
        }

    def find_by_serial_number(self, product_id: str, serial_number: str) -> Device | None:
        return self._first(lambda d: d.product_id == product_id and d.serial_number == serial_number)

    def delete(self, device_id: str) -> None:
        self._t.devices.pop(device_id, None)

    def find_by_active_certificates(self, fingerprints: Sequence[str]) -> dict[str, Device]:
        """As the SQL adapter: an active certificate, signed by Lineside or a verified CA."""
        found: dict[str, Device] = {}
        for certificate in self._t.certificates.values():
            issuer = self._t.authorities.get(certificate.authority_id or "")
            trusted = certificate.authority_id is None or (
                issuer is not None and issuer.status is AuthorityStatus.VERIFIED
            )
            row = self._t.devices.get(certificate.device_id)
            if (
                certificate.fingerprint_sha256 in fingerprints
                and certificate.revoked_at is None
                and trusted
                and row
            ):
                found[certificate.fingerprint_sha256] = _as_stored(row.device)
        return found

    def count_online(self, *, within: str, at_most: int) -> int:
        subtree = self._t.subtree(within)
        online = sum(
            1
            for row in self._t.devices.values()
            if row.device.online and row.device.organization_id in subtree
        )
        return min(online, at_most)

    # -- lifecycle --------------------------------------------------------------------------

    def find_by_hardware_id(self, product_id: str, hardware_id: str) -> Device | None:
        return self._first(lambda d: d.product_id == product_id and d.hardware_id == hardware_id)

    def set_hardware_id(self, device_id: str, hardware_id: str) -> None:
        self._change(device_id, hardware_id=hardware_id)

    def set_group(self, device_ids: Sequence[str], group_id: str) -> None:
        for device_id in device_ids:
            self._change(device_id, group_id=group_id)

    def save_state_if(self, device: Device, previous: DeviceState) -> bool:
        row = self._t.devices.get(device.id)
        if row is None or row.device.state is not previous:
            return False
        timeline = {name: device.timeline.get(name) for name in LIFECYCLE_FIELDS}
        self._change(
            device.id,
            state=device.state,
            group_id=device.group_id,
            factory_token_id=device.factory_token_id,
            timeline=timeline,
        )
        return True

    def set_firmware_version(self, device_id: str, version: str, at: datetime) -> None:
        self._change(device_id, firmware_version=version, firmware_reported_at=at)

    def activation_candidates(self, device_ids: Sequence[str]) -> builtins.list[tuple[Device, bool]]:
        waiting = (DeviceState.DEFINED, DeviceState.BLESSED)
        found = []
        for device_id in device_ids:
            row = self._t.devices.get(device_id)
            if row is not None and row.device.state in waiting:
                product = self._t.products[row.device.product_id]
                found.append((_as_stored(row.device), product.requires_blessing))
        return found

    def activate_if_still(self, activations: Sequence[tuple[str, DeviceState, datetime]]) -> set[str]:
        activated = set()
        for device_id, read_in, at in activations:
            row = self._t.devices.get(device_id)
            if row is not None and row.device.state is read_in:
                timeline = {**row.device.timeline, "activated_at": at}
                self._change(device_id, state=DeviceState.ACTIVATED, timeline=timeline)
                activated.add(device_id)
        return activated

    # -- credentials ------------------------------------------------------------------------

    def set_token(self, device_id: str, token_hash: str, at: datetime) -> None:
        self._t.devices[device_id].token_hash = token_hash
        self._change(device_id, token_issued_at=at)

    def clear_token(self, device_id: str) -> None:
        self._t.devices[device_id].token_hash = None

    def set_mqtt_password(self, device_id: str, password_hash: str, at: datetime) -> None:
        self._t.devices[device_id].mqtt_password_hash = password_hash
        self._change(device_id, mqtt_password_issued_at=at)

    def clear_mqtt_password(self, device_id: str) -> None:
        self._t.devices[device_id].mqtt_password_hash = None
        self._change(device_id, mqtt_password_issued_at=None)

    def find_by_token_hash(self, token_hash: str) -> Device | None:
        rows = (row for row in self._t.devices.values() if row.token_hash == token_hash)
        row = next(rows, None)
        return _as_stored(row.device) if row else None

    # -- ownership --------------------------------------------------------------------------

    def find_by_claim_hash(self, claim_code_hash: str) -> Device | None:
        rows = (row for row in self._t.devices.values() if row.claim_code_hash == claim_code_hash)
        row = next(rows, None)
        return _as_stored(row.device) if row else None

    def claim_if_unclaimed(self, device_id: str, owner_id: str, at: datetime, actor: str) -> bool:
        row = self._t.devices.get(device_id)
        if row is None or row.device.owner_organization_id is not None:
            return False
        self._change(device_id, owner_organization_id=owner_id, claimed_at=at)
        return True

    def release_claim(self, device_id: str) -> None:
        if device_id in self._t.devices:
            self._change(device_id, owner_organization_id=None, claimed_at=None)

    def move_owner(self, device_id: str, from_owner: str, to_owner: str, at: datetime, actor: str) -> bool:
        row = self._t.devices.get(device_id)
        if row is None or row.device.owner_organization_id != from_owner:
            return False
        self._change(device_id, owner_organization_id=to_owner, claimed_at=at)
        return True

    # -- static-token units -----------------------------------------------------------------

    def batch_page(self, batch_id: str, after_id: str | None, limit: int) -> builtins.list[BatchUnit]:
        rows = sorted(
            (row.device for row in self._t.devices.values() if row.device.batch_id == batch_id),
            key=lambda d: d.id,
        )
        after = [d for d in rows if after_id is None or d.id > after_id][:limit]
        return [BatchUnit(d.id, d.serial_number, dict(d.metadata), d.claim_generation) for d in after]

    def batch_figures(self, batch_id: str) -> builtins.list[tuple[str, bool, bool, int]]:
        mixes: dict[tuple[str, bool, bool], int] = {}
        for row in self._t.devices.values():
            d = row.device
            if d.batch_id == batch_id:
                key = (d.state.value, d.owner_organization_id is not None, d.online)
                mixes[key] = mixes.get(key, 0) + 1
        return [(*key, devices) for key, devices in mixes.items()]

    def any_activated_in_batch(self, batch_id: str) -> bool:
        return any(
            row.device.batch_id == batch_id and row.device.timeline.get("activated_at") is not None
            for row in self._t.devices.values()
        )

    def set_tokens(self, token_hashes: Sequence[tuple[str, str]], at: datetime) -> None:
        for device_id, token_hash in token_hashes:
            self.set_token(device_id, token_hash, at)

    def clear_tokens_of_batch(self, batch_id: str) -> None:
        for device_id, row in self._t.devices.items():
            if row.device.batch_id == batch_id:
                row.token_hash = None
                self._change(device_id, token_issued_at=None)

    def set_claim_codes(self, claim_hashes: Sequence[tuple[str, str]], generation: int) -> None:
        for device_id, claim_hash in claim_hashes:
            self._t.devices[device_id].claim_code_hash = claim_hash
            self._change(device_id, claim_generation=generation, has_claim_code=True)

    # -- helpers ----------------------------------------------------------------------------

    def _clashes(self, new: NewDevice) -> bool:
        """What the table's unique indexes refuse: an id, a product's serial number or
        hardware id, or any secret's hash, twice."""
        device = new.device
        for row in self._t.devices.values():
            stored = row.device
            same_product = stored.product_id == device.product_id
            if (
                stored.id == device.id
                or (same_product and stored.serial_number == device.serial_number)
                or (same_product and device.hardware_id and stored.hardware_id == device.hardware_id)
                or _same_secret(row.token_hash, new.token_hash)
                or _same_secret(row.claim_code_hash, new.claim_code_hash)
                or _same_secret(row.mqtt_password_hash, new.mqtt_password_hash)
            ):
                return True
        return False

    def _first(self, test: Callable[[Device], bool]) -> Device | None:
        found = next((row.device for row in self._t.devices.values() if test(row.device)), None)
        return _as_stored(found) if found else None

    def _change(self, device_id: str, **changes: Any) -> None:
        row = self._t.devices[device_id]
        row.device = replace(row.device, **changes)

    def __getattr__(self, attribute: str) -> Any:
        return getattr(NotFaked("FakeDevices"), attribute)


def _same_secret(stored: str | None, new: str | None) -> bool:
    return new is not None and stored == new


def _matches(device: Device, filters: DeviceFilter) -> bool:
    return (
        (filters.product_id is None or device.product_id == filters.product_id)
        and (filters.state is None or device.state is filters.state)
        and (filters.serial_number is None or device.serial_number == filters.serial_number)
        and (filters.batch_id is None or device.batch_id == filters.batch_id)
        and (filters.group_id is None or device.group_id == filters.group_id)
        and (filters.hardware_address is None or filters.hardware_address in (device.mac, device.hardware_id))
        and (filters.online is None or device.online is filters.online)
        and (filters.claimed is None or (device.owner_organization_id is not None) is filters.claimed)
        and (filters.firmware_version is None or device.firmware_version == filters.firmware_version)
        and (
            filters.metadata is None or _text(device.metadata.get(filters.metadata[0])) == filters.metadata[1]
        )
    )


def _text(value: Any) -> str | None:
    """A metadata value as SQL's JSON-as-text reads it."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value)


class FakeDeviceCounts:
    """Counted from the devices themselves: the counters the SQL adapter keeps must agree."""

    def __init__(self, tables: Tables) -> None:
        self._t = tables

    def made_by(self, organization_id: str) -> int:
        return sum(1 for row in self._t.devices.values() if row.device.organization_id == organization_id)

    def of_product(self, organization_id: str, product_id: str) -> int:
        return sum(
            1
            for row in self._t.devices.values()
            if (row.device.organization_id, row.device.product_id) == (organization_id, product_id)
        )

    def within(self, within: str) -> list[DeviceCount]:
        subtree = self._t.subtree(within)
        totals: dict[tuple[str, str, str, bool], int] = {}
        for row in self._t.devices.values():
            d = row.device
            if d.organization_id in subtree:
                key = (d.organization_id, d.product_id, d.state.value, d.owner_organization_id is not None)
                totals[key] = totals.get(key, 0) + 1
        return [DeviceCount(*key, devices) for key, devices in sorted(totals.items())]

    def by_state(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for row in self._t.devices.values():
            totals[row.device.state.value] = totals.get(row.device.state.value, 0) + 1
        return totals

    def recount(self) -> int:
        return 0  # nothing to rebuild: every count is read from the devices


class FakeActivity:
    """What the services report (test runs). Arrivals in states are counted by the SQL
    adapter as devices change (adapters.db.activity): the integration tier tests those."""

    def __init__(self, tables: Tables, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._t = tables
        self._clock = clock

    def record_test_run(
        self, organization_id: str, product_id: str, *, sources: Sequence[str], passed: bool, first: bool
    ) -> None:
        hour = self._clock().replace(minute=0, second=0, microsecond=0)
        measures = [Measure.TEST_RUNS] + [Measure.TESTS_PASSED] * passed
        if first:
            measures += [Measure.FIRST_TESTS] + [Measure.FIRST_TESTS_PASSED] * passed
        for source in ("", *sources):
            for measure in measures:
                self._t.activity.append(
                    (organization_id, ActivityCount(product_id, hour, measure, source, 1))
                )

    def count_at(self, organization_id: str, product_id: str, measure: str, source: str) -> None:
        hour = self._clock().replace(minute=0, second=0, microsecond=0)
        self._t.activity.append((organization_id, ActivityCount(product_id, hour, measure, source, 1)))

    def since(
        self, within: str, since: datetime, *, product_id: str | None = None
    ) -> builtins.list[ActivityCount]:
        subtree = self._t.subtree(within)
        return [
            count
            for organization_id, count in self._t.activity
            if organization_id in subtree
            and count.hour >= since
            and (product_id is None or count.product_id == product_id)
        ]


class FakeAuthorities:
    """Makers' CAs, with each one's challenge hash and expiry, warned mark and CRL serials."""

    def __init__(self, tables: Tables) -> None:
        self._t = tables

    def add(
        self, authority: CertificateAuthorityRecord, challenge_hash: str, challenge_expires_at: datetime
    ) -> None:
        self._t.authorities[authority.id] = authority
        self._t.authority_extras[authority.id] = {"challenge": (challenge_hash, challenge_expires_at)}

    def get(self, authority_id: str, *, within: str) -> CertificateAuthorityRecord | None:
        found = self._t.authorities.get(authority_id)
        return found if found is not None and found.organization_id in self._t.subtree(within) else None

    def list_for_product(self, product_id: str) -> builtins.list[CertificateAuthorityRecord]:
        return sorted(
            (a for a in self._t.authorities.values() if a.product_id == product_id), key=lambda a: a.id
        )

    def challenge_of(self, authority_id: str) -> tuple[str, datetime] | None:
        challenge: tuple[str, datetime] | None = self._t.authority_extras[authority_id].get("challenge")
        return challenge

    def set_status(self, authority_id: str, status: AuthorityStatus, at: datetime) -> None:
        authority = self._t.authorities[authority_id]
        if status is AuthorityStatus.VERIFIED:
            self._t.authority_extras[authority_id]["challenge"] = None
            authority = replace(authority, verified_at=at)
        self._t.authorities[authority_id] = replace(authority, status=status)

    def close_registration(self, authority_id: str, at: datetime) -> None:
        authority = self._t.authorities[authority_id]
        self._t.authorities[authority_id] = replace(authority, registration_closed_at=at)

    def verified_with_fingerprint(self, fingerprint_sha256: str) -> CertificateAuthorityRecord | None:
        return next(
            (
                a
                for a in self._t.authorities.values()
                if a.fingerprint_sha256 == fingerprint_sha256 and a.status is not AuthorityStatus.PENDING
            ),
            None,
        )

    def with_key_ids(self, key_ids: Sequence[str]) -> builtins.list[CertificateAuthorityRecord]:
        return sorted((a for a in self._t.authorities.values() if a.key_id in key_ids), key=lambda a: a.id)

    def delete(self, authority_id: str) -> None:
        self._t.authorities.pop(authority_id, None)

    def replace_revoked_serials(self, authority_id: str, serials: Sequence[str], at: datetime) -> None:
        self._t.authority_extras[authority_id]["revoked"] = set(serials)
        self._t.authorities[authority_id] = replace(self._t.authorities[authority_id], crl_updated_at=at)

    def is_revoked(self, authority_id: str, serial_hex: str) -> bool:
        return serial_hex in self._t.authority_extras[authority_id].get("revoked", set())

    def revoked_among(self, authority_id: str, serials: Sequence[str]) -> set[str]:
        return {serial for serial in serials if self.is_revoked(authority_id, serial)}

    def expiring_unwarned(self, before: datetime) -> builtins.list[CertificateAuthorityRecord]:
        return [
            a
            for a in self.list_all()
            if a.status is AuthorityStatus.VERIFIED
            and a.not_after < before
            and not self._t.authority_extras[a.id].get("warned")
        ]

    def mark_warned(self, authority_id: str, at: datetime) -> None:
        self._t.authority_extras[authority_id]["warned"] = at

    def list_all(self) -> builtins.list[CertificateAuthorityRecord]:
        return sorted(self._t.authorities.values(), key=lambda a: a.id)

    def certificates_to_trust(self) -> builtins.list[str]:
        return [a.certificate_pem for a in self.list_all() if a.status is not AuthorityStatus.PENDING]


class FakeStations(NotFaked):
    """No offline stations here (tests/integration covers them): no token is of a pool."""

    def __init__(self) -> None:
        super().__init__("FakeUnitOfWork.stations")

    def pool_by_token_hashes(self, token_hashes: Sequence[str]) -> builtins.list[PoolEntry]:
        return []


class FakeCertificates:
    def __init__(self, tables: Tables) -> None:
        self._t = tables

    def revoke_issued(self, authority_id: str, serials: Sequence[str], at: datetime) -> builtins.list[str]:
        hit = [
            c
            for c in self._t.certificates.values()
            if c.authority_id == authority_id and c.issuer_serial_hex in serials and c.revoked_at is None
        ]
        for certificate in hit:
            self._t.certificates[certificate.id] = replace(certificate, revoked_at=at)
        return sorted({c.device_id for c in hit})

    def add(self, certificate: Certificate) -> None:
        self._t.certificates[certificate.id] = certificate

    def add_many(self, certificates: Sequence[Certificate]) -> None:
        for certificate in certificates:
            self.add(certificate)

    def list_for_device(self, device_id: str) -> list[Certificate]:
        return sorted(
            (c for c in self._t.certificates.values() if c.device_id == device_id), key=lambda c: c.id
        )

    def revoke_active(self, device_id: str, at: datetime) -> list[Certificate]:
        active = [c for c in self.list_for_device(device_id) if c.revoked_at is None]
        for certificate in active:
            self._t.certificates[certificate.id] = replace(certificate, revoked_at=at)
        return active

    def list_revoked(self, product_id: str) -> list[Certificate]:
        revoked = (c for c in self._t.certificates.values() if c.product_id == product_id and c.revoked_at)
        return sorted(revoked, key=lambda c: c.id)


class FakeEvents:
    def __init__(self, tables: Tables) -> None:
        self._t = tables

    def add(self, event: DomainEvent) -> None:
        self._t.events.append(event)

    def add_many(self, events: Sequence[DomainEvent], *, recorded_at: datetime | None = None) -> None:
        self._t.events.extend(
            events if recorded_at is None else [replace(e, recorded_at=recorded_at) for e in events]
        )

    def list(self, *, within: str, filters: EventFilter, cursor: str | None, limit: int) -> Page[DomainEvent]:
        subtree = self._t.subtree(within)
        numbered = [
            (sequence, event)
            for sequence, event in enumerate(self._t.events, start=1)
            if event.organization_id in subtree
            and (filters.type is None or event.type == filters.type)
            and (filters.subject_id is None or event.subject_id == filters.subject_id)
            and (cursor is None or sequence > int(cursor))
        ]
        page = numbered[:limit]
        next_cursor = str(page[-1][0]) if len(numbered) > limit and page else None
        return Page([event for _, event in page], next_cursor)

    def latest(self, *, within: str, limit: int, type: str | None = None) -> builtins.list[DomainEvent]:
        subtree = self._t.subtree(within)
        mine = [
            event
            for event in self._t.events
            if event.organization_id in subtree and (type is None or event.type == type)
        ]
        return mine[::-1][:limit]


class FakeUsers:
    def __init__(self, tables: Tables) -> None:
        self._t = tables

    def add(self, user: User, password_hash: str) -> None:
        if self.find_by_email(user.email) is not None:
            raise Conflict(CONCURRENT_CHANGE)
        self._t.users[user.id] = (user, password_hash)

    def find_by_email(self, email: str) -> tuple[User, str] | None:
        return next(((u, h) for u, h in self._t.users.values() if u.email == email), None)

    def get(self, user_id: str) -> User | None:
        found = self._t.users.get(user_id)
        return found[0] if found else None

    def add_membership(self, user_id: str, organization_id: str, at: datetime, role: Role) -> None:
        self._t.memberships.setdefault((user_id, organization_id), role)

    def organizations_of(self, user_id: str) -> list[Organization]:
        return [organization for organization, _role in self.memberships_of(user_id)]

    def memberships_of(self, user_id: str) -> list[tuple[Organization, Role]]:
        mine = [
            (self._t.organizations[org], role)
            for (user, org), role in self._t.memberships.items()
            if user == user_id
        ]
        return sorted(mine, key=lambda membership: membership[0].path)

    def members_of(self, organization_id: str, limit: int) -> list[tuple[User, Role]]:
        members = [
            (self._t.users[user][0], role)
            for (user, org), role in self._t.memberships.items()
            if org == organization_id
        ]
        return sorted(members, key=lambda member: member[0].email)[:limit]

    def owners_of(self, organization_id: str, *, lock: bool = False) -> list[str]:
        return sorted(
            user
            for (user, org), role in self._t.memberships.items()
            if org == organization_id and role is Role.OWNER
        )

    def role_in(self, user_id: str, organization_id: str, *, lock: bool = False) -> Role | None:
        return self._t.memberships.get((user_id, organization_id))

    def set_role(self, user_id: str, organization_id: str, role: Role) -> bool:
        if (user_id, organization_id) not in self._t.memberships:
            return False
        self._t.memberships[(user_id, organization_id)] = role
        return True

    def add_session(
        self, session_id: str, user_id: str, token_hash: str, at: datetime, expires_at: datetime
    ) -> None:
        self._t.sessions[token_hash] = (user_id, expires_at, None)

    def find_session_user(self, token_hash: str, now: datetime) -> User | None:
        found = self._t.sessions.get(token_hash)
        if found is None or found[2] is not None or found[1] <= now:
            return None
        return self.get(found[0])

    def revoke_session(self, token_hash: str, at: datetime) -> None:
        if token_hash in self._t.sessions:
            user_id, expires_at, _ = self._t.sessions[token_hash]
            self._t.sessions[token_hash] = (user_id, expires_at, at)

    def password_hash(self, user_id: str) -> str | None:
        found = self._t.users.get(user_id)
        return found[1] if found else None

    def set_password_hash(self, user_id: str, password_hash: str) -> None:
        user, _ = self._t.users[user_id]
        self._t.users[user_id] = (user, password_hash)

    def revoke_sessions_except(self, user_id: str, keep_token_hash: str, at: datetime) -> int:
        revoked = 0
        for token_hash, (owner, expires_at, revoked_at) in list(self._t.sessions.items()):
            if owner == user_id and token_hash != keep_token_hash and revoked_at is None:
                self._t.sessions[token_hash] = (owner, expires_at, at)
                revoked += 1
        return revoked

    def add_invitation(
        self,
        invitation_id: str,
        organization_id: str,
        email: str,
        code_hash: str,
        at: datetime,
        expires_at: datetime,
        role: Role,
    ) -> None:
        self._t.invitations[invitation_id] = {
            "organization_id": organization_id,
            "email": email,
            "code_hash": code_hash,
            "expires_at": expires_at,
            "accepted_at": None,
            "role": role,
        }

    def open_invitation(self, code_hash: str, now: datetime) -> tuple[str, str, str, Role] | None:
        for invitation_id, row in self._t.invitations.items():
            if row["code_hash"] == code_hash and row["accepted_at"] is None and row["expires_at"] > now:
                return invitation_id, row["organization_id"], row["email"], row["role"]
        return None

    def accept_invitation(self, invitation_id: str, at: datetime) -> bool:
        row = self._t.invitations[invitation_id]
        if row["accepted_at"] is not None:
            return False
        row["accepted_at"] = at
        return True


class FakeStaticBatches:
    def __init__(self, tables: Tables) -> None:
        self._t = tables

    def add(self, batch: StaticTokenBatch) -> None:
        self._t.static_batches[batch.id] = batch

    def get(self, batch_id: str, *, within: str) -> StaticTokenBatch | None:
        found = self._t.static_batches.get(batch_id)
        return found if found and found.organization_id in self._t.subtree(within) else None

    def mark_exported(self, batch_id: str, at: datetime) -> bool:
        batch = self._t.static_batches[batch_id]
        if batch.exported_at is not None:
            return False
        self._t.static_batches[batch_id] = replace(batch, exported_at=at)
        return True

    def latest(self, *, within: str, limit: int) -> list[StaticTokenBatch]:
        subtree = self._t.subtree(within)
        mine = (batch for batch in self._t.static_batches.values() if batch.organization_id in subtree)
        return sorted(mine, key=lambda batch: batch.id, reverse=True)[:limit]

    def clear_exported(self, batch_id: str) -> None:
        batch = self._t.static_batches[batch_id]
        self._t.static_batches[batch_id] = replace(batch, exported_at=None)


class FakeTombstones:
    def __init__(self, tables: Tables) -> None:
        self._t = tables

    def add(
        self, claim_code_hash: str, device_id: str, organization_id: str, serial: str, at: datetime
    ) -> None:
        self._t.tombstones[claim_code_hash] = (serial, at)

    def find(self, claim_code_hash: str) -> tuple[str, datetime] | None:
        return self._t.tombstones.get(claim_code_hash)


class FakeFactoryTokens:
    def __init__(self, tables: Tables) -> None:
        self._t = tables

    def add(self, token: FactoryToken, token_hash: str) -> None:
        self._t.factory_tokens[token.id] = (token, token_hash)

    def find_active_by_hash(self, token_hash: str) -> tuple[FactoryToken, Product] | None:
        for token, stored in self._t.factory_tokens.values():
            if stored == token_hash and token.revoked_at is None:
                return token, self._t.products[token.product_id]
        return None

    def get(self, token_id: str, *, within: str) -> FactoryToken | None:
        found = self._t.factory_tokens.get(token_id)
        return found[0] if found and found[0].organization_id in self._t.subtree(within) else None

    def list(self, *, within: str) -> list[FactoryToken]:
        subtree = self._t.subtree(within)
        tokens = [token for token, _ in self._t.factory_tokens.values() if token.organization_id in subtree]
        return sorted(tokens, key=lambda token: token.id)

    def revoke(self, token_id: str, at: datetime) -> None:
        token, stored = self._t.factory_tokens[token_id]
        if token.revoked_at is None:
            self._t.factory_tokens[token_id] = (replace(token, revoked_at=at), stored)


class FakeTestRuns:
    __test__ = False  # not a pytest test class, whatever its name says

    def __init__(self, tables: Tables) -> None:
        self._t = tables

    def add(self, run: TestRun) -> None:
        self._t.test_runs.append(run)

    def latest_for_device(self, device_id: str, *, since: datetime | None) -> TestRun | None:
        runs = self.list_for_device(device_id)
        return next((run for run in runs if since is None or run.created_at >= since), None)

    def list_for_device(self, device_id: str) -> list[TestRun]:  # newest first
        runs = [run for run in self._t.test_runs if run.device_id == device_id]
        return sorted(runs, key=lambda run: (run.created_at, run.id), reverse=True)


class FakeProductionTokens:
    def __init__(self, tables: Tables) -> None:
        self._t = tables

    def add(self, token: ProductionToken, token_hash: str) -> None:
        self._t.production_tokens[token.id] = (token, token_hash)

    def find_by_hash(self, token_hash: str, *, within: str) -> ProductionToken | None:
        subtree = self._t.subtree(within)
        for token, stored in self._t.production_tokens.values():
            if stored == token_hash and token.organization_id in subtree:
                return token
        return None

    def latest(self, *, within: str, limit: int) -> builtins.list[ProductionToken]:
        subtree = self._t.subtree(within)
        mine = [
            token for token, _hash in self._t.production_tokens.values() if token.organization_id in subtree
        ]
        return sorted(mine, key=lambda token: token.id, reverse=True)[:limit]

    def use_if_unused(self, token_id: str, device_id: str, at: datetime) -> bool:
        token, stored = self._t.production_tokens[token_id]
        if token.used_at is not None:
            return False
        self._t.production_tokens[token_id] = (replace(token, used_at=at, device_id=device_id), stored)
        return True


class FakeTransfers:
    def __init__(self, tables: Tables) -> None:
        self._t = tables

    def add(self, transfer: DeviceTransfer, code_hash: str) -> None:
        self._t.transfers[transfer.id] = (transfer, code_hash)

    def find_by_code_hash(self, code_hash: str) -> DeviceTransfer | None:
        return next((found for found, stored in self._t.transfers.values() if stored == code_hash), None)

    def get(self, transfer_id: str) -> DeviceTransfer | None:
        found = self._t.transfers.get(transfer_id)
        return found[0] if found else None

    def open_for_device(self, device_id: str, now: datetime) -> list[DeviceTransfer]:
        offers = (found for found, _ in self._t.transfers.values() if found.device_id == device_id)
        return sorted((o for o in offers if _open(o, now)), key=lambda offer: offer.created_at)

    def accept(self, transfer_id: str, to_organization_id: str, at: datetime) -> bool:
        offer, stored = self._t.transfers[transfer_id]
        if not _open(offer, at):
            return False
        self._t.transfers[transfer_id] = (
            replace(offer, accepted_at=at, to_organization_id=to_organization_id),
            stored,
        )
        return True

    def cancel_open(self, device_id: str, at: datetime) -> int:
        cancelled = 0
        for transfer_id, (offer, stored) in list(self._t.transfers.items()):
            if offer.device_id == device_id and offer.accepted_at is None and offer.cancelled_at is None:
                self._t.transfers[transfer_id] = (replace(offer, cancelled_at=at), stored)
                cancelled += 1
        return cancelled


def _open(offer: DeviceTransfer, now: datetime) -> bool:
    return offer.accepted_at is None and offer.cancelled_at is None and offer.expires_at > now


class FakeFirmware:
    """Only what assigning a device its release reads; deploying firmware is the
    integration tier's."""

    def __init__(self, tables: Tables) -> None:
        self._t = tables

    def get_group(self, group_id: str, *, within: str | None = None) -> DeviceGroup | None:
        group = self._t.groups.get(group_id)
        if group is None or (within is not None and group.organization_id not in self._t.subtree(within)):
            return None
        return group

    def get_release(self, release_id: str, *, within: str | None = None) -> FirmwareRelease | None:
        release = self._t.releases.get(release_id)
        if release is None or (within is not None and release.organization_id not in self._t.subtree(within)):
            return None
        return release

    def factory_release_of_product(self, product_id: str) -> FirmwareRelease | None:
        factory_groups = [
            group
            for group in self._t.groups.values()
            if group.product_id == product_id and group.kind is GroupKind.FACTORY and group.release_id
        ]
        newest = max(factory_groups, key=lambda group: group.id, default=None)
        return self._t.releases.get(newest.release_id) if newest and newest.release_id else None

    def __getattr__(self, attribute: str) -> Any:
        return getattr(NotFaked("FakeFirmware"), attribute)


class FakeDatabase:
    """The committed state every unit of work starts from."""

    def __init__(self) -> None:
        self.tables = Tables()
        self.commits = 0

    def unit_of_work(self, *, write: bool = True, snapshot: bool = True) -> FakeUnitOfWork:
        return FakeUnitOfWork(self, write=write)

    def units(self) -> UnitOfWorkFactory:
        """The port's view of ``unit_of_work`` (whose repositories fake only some roles)."""
        return cast(UnitOfWorkFactory, self.unit_of_work)


class FakeUnitOfWork:
    """One transaction on a private copy of the tables; ``commit()`` makes the copy the
    database's (a write after another unit of work committed wins, as the fakes take no
    locks: concurrency is the integration tier's to test)."""

    def __init__(self, database: FakeDatabase, *, write: bool) -> None:
        self._database = database
        self._write = write
        self._tables = Tables()

    def __enter__(self) -> Self:
        self._tables = copy.deepcopy(self._database.tables)
        t = self._tables
        self.organizations = FakeOrganizations(t)
        self.api_keys = FakeApiKeys(t)
        self.products = FakeProducts(t)
        self.groups = FakeGroups(t)
        self.devices = FakeDevices(t)
        self.device_counts = FakeDeviceCounts(t)
        self.activity = FakeActivity(t)
        self.certificates = FakeCertificates(t)
        self.authorities = FakeAuthorities(t)
        self.events = FakeEvents(t)
        self.users = FakeUsers(t)
        self.static_batches = FakeStaticBatches(t)
        self.tombstones = FakeTombstones(t)
        self.factory_tokens = FakeFactoryTokens(t)
        self.test_runs = FakeTestRuns(t)
        self.production_tokens = FakeProductionTokens(t)
        self.firmware = FakeFirmware(t)
        self.transfers = FakeTransfers(t)
        self.stations = FakeStations()
        return self

    def __getattr__(self, attribute: str) -> Any:
        # webhooks: the integration tier's.
        return NotFaked(f"FakeUnitOfWork.{attribute}")

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._tables = Tables()  # uncommitted changes are gone, as on rollback

    def commit(self) -> None:
        assert self._write, "a read-only unit of work cannot commit"
        self._database.tables = self._tables
        self._tables = copy.deepcopy(self._tables)
        self._database.commits += 1


class FakeDeviceTokens:
    """The device-token lookup, read from the committed tables."""

    def __init__(self, database: FakeDatabase) -> None:
        self._database = database

    def find_by_token_hash(self, token_hash: str) -> Device | None:
        return FakeDevices(self._database.tables).find_by_token_hash(token_hash)

    def identity_by_token_hash(self, token_hash: str) -> DeviceIdentity | None:
        device = self.find_by_token_hash(token_hash)
        if device is None:
            return None
        return DeviceIdentity(
            device.id,
            device.product_id,
            device.serial_number,
            device.state,
            device.online,
            device.last_seen_at,
        )


class FakeRateLimiter:
    """Fixed windows, as the SQL limiter keeps them, on the injected clock."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self._clock = clock
        self._windows: dict[str, tuple[datetime, int]] = {}

    def acquire(self, bucket: str, limit: int, window: timedelta) -> Slot:
        now = self._clock()
        started, count = self._windows.get(bucket, (now, 0))
        if started <= now - window:
            started, count = now, 0
        if count >= limit:
            wait = max(1, int((started + window - now).total_seconds()) + 1)
            return Slot(taken=False, count=limit, retry_after=wait)
        self._windows[bucket] = (started, count + 1)
        return Slot(taken=True, count=count + 1)

    def release(self, bucket: str, window: timedelta) -> None:
        started, count = self._windows.get(bucket, (self._clock(), 0))
        if count > 0 and started > self._clock() - window:
            self._windows[bucket] = (started, count - 1)


class PlainPasswords:
    """A keyed hash instead of Argon2: the rules around passwords, not its cost, are under test."""

    def __init__(self, hasher: SecretHasher) -> None:
        self._hasher = hasher

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        return password_hash is not None and self._hasher.matches(password, password_hash)


class SteppingClock:
    """A clock the test moves by hand: time-dependent rules without sleeping."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
        self._ticks = itertools.count()

    def __call__(self) -> datetime:
        # A microsecond per reading keeps ids and "latest" orderings strict, as real time does.
        return self.now + timedelta(microseconds=next(self._ticks))

    def advance(self, by: timedelta) -> None:
        self.now += by


def fake_services(
    *, clock: SteppingClock | None = None, config: ServiceConfig | None = None
) -> tuple[ServiceContext, FakeDatabase]:
    """A ServiceContext on fakes, and the database behind it (to look at what was kept)."""
    database = FakeDatabase()
    clock = clock or SteppingClock()
    hasher = SecretHasher(b"k" * 32)
    context = ServiceContext(
        unit_of_work=database.units(),
        device_tokens=FakeDeviceTokens(database),
        hasher=hasher,
        certificate_authority=cast(Any, NotFaked("certificate authority")),
        clock=clock,
        passwords=PlainPasswords(hasher),
        rate_limiter=FakeRateLimiter(clock),
        firmware_store=cast(Any, NotFaked("firmware store")),
        webhooks=cast(WebhookAdapters, NotFaked("webhook adapters")),
        x509=X509Inspector(),  # pure computation: the real one
        station_keys=Ed25519StationKeys(),  # likewise
        config=config or ServiceConfig(),
    )
    return context, database


def as_unit_of_work(unit: FakeUnitOfWork) -> UnitOfWork:
    return cast(UnitOfWork, unit)
