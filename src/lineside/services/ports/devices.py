"""Devices, their products and groups, their counters, and the device-token lookup."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from lineside.domain.lifecycle import DeviceState
from lineside.domain.metadata import MetadataField
from lineside.domain.models import (
    Device,
    DeviceGroup,
    Product,
    RegistrationIdentity,
    RegistrationPolicy,
)
from lineside.services.ports.common import Page

# A metadata search (no index holds metadata) reads at most this many devices per page and
# branch; a page may then hold fewer matches than asked for, and still have a next one.
METADATA_SEARCH_WINDOW = 20_000


@dataclass(frozen=True)
class DeviceFilter:
    product_id: str | None = None
    state: DeviceState | None = None
    serial_number: str | None = None
    batch_id: str | None = None
    group_id: str | None = None
    # A MAC (normalised, as stored) or the hardware id a factory fixture read: either matches.
    hardware_address: str | None = None
    online: bool | None = None
    claimed: bool | None = None
    firmware_version: str | None = None
    # (field name, value as text): read through the organization's (or product's) devices
    # until a page matches, as no index holds metadata.
    metadata: tuple[str, str] | None = None
    # Ids are time-ordered (UUIDv7): newest first is the same index read backwards.
    newest_first: bool = False


@dataclass(frozen=True)
class BatchUnit:
    """What labels and exports need of one device of a batch, and nothing more."""

    device_id: str
    serial_number: str
    metadata: dict[str, Any]
    claim_generation: int


@dataclass(frozen=True, slots=True)
class NewDevice:
    """A device to insert, with the keyed hash of its token (or MQTT password) if one was issued."""

    device: Device
    token_hash: str | None = None
    claim_code_hash: str | None = None
    mqtt_password_hash: str | None = None


class ProductRepository(Protocol):
    def add(self, product: Product) -> None: ...
    def get(self, product_id: str, *, within: str) -> Product | None: ...
    def list(self, *, within: str, cursor: str | None, limit: int) -> Page[Product]: ...
    def name_taken(self, organization_id: str, name: str) -> bool: ...
    def set_requires_blessing(self, product_id: str, requires_blessing: bool) -> None: ...
    # Rename and redefine: the caller checked the name is free and the fields fit its devices.
    def set_definition(
        self, product_id: str, name: str, metadata_fields: Sequence[MetadataField]
    ) -> None: ...
    # MQTT provisioning: the key is public, only the keyed hash of the secret is kept.
    def find_by_provision_key(self, provision_key: str) -> tuple[Product, str | None] | None:
        """The product with this key and its secret's hash (None: provisioning disabled)."""
        ...

    def set_provisioning(
        self, product_id: str, provision_key: str | None, secret_hash: str | None
    ) -> None: ...

    def set_registration(
        self,
        product_id: str,
        policy: RegistrationPolicy,
        identity: RegistrationIdentity,
        reregistration: bool,
    ) -> None: ...


class DeviceGroupRepository(Protocol):
    def add(self, group: DeviceGroup) -> None: ...
    def list_for_product(self, product_id: str) -> list[DeviceGroup]: ...
    def name_taken(self, product_id: str, name: str) -> bool: ...
    # Add ``group`` unless its product has a group of that name (committed, or being added
    # by a concurrent transaction, which is waited for); True if it was added.
    def add_unless_name_taken(self, group: DeviceGroup) -> bool: ...


@dataclass(frozen=True)
class DeviceCount:
    """How many devices an organization made of a product that are in a state, claimed or not."""

    organization_id: str
    product_id: str
    state: str
    claimed: bool
    devices: int


class DeviceCountRepository(Protocol):
    """Counters kept in the transactions that change devices: reading them costs a few rows."""

    def made_by(self, organization_id: str) -> int: ...
    def of_product(self, organization_id: str, product_id: str) -> int:
        """How many devices of the product its organization holds (every device of a product)."""
        ...

    def within(self, within: str) -> list[DeviceCount]: ...
    def by_state(self) -> dict[str, int]: ...
    # Rebuild every counter from the devices; how many were wrong.
    def recount(self) -> int: ...


class Measure(StrEnum):
    """What the activity counters count per product and hour, beside a device's arrival in
    each lifecycle state (counted under the state's name)."""

    CLAIMED = "claimed"
    RETESTED = "retested"  # a failed unit enrolled again
    TEST_RUNS = "test_runs"
    TESTS_PASSED = "tests_passed"
    FIRST_TESTS = "first_tests"  # a unit's first test run
    FIRST_TESTS_PASSED = "first_tests_passed"


@dataclass(frozen=True)
class ActivityCount:
    """How many times ``measure`` happened in one hour, for a product (``source`` ''), or at
    one fixture ('fixture:<name>') or under one factory token ('token:<id>')."""

    product_id: str
    hour: datetime
    measure: str
    source: str
    count: int


class ActivityRepository(Protocol):
    """Counters per product and hour, kept in the transactions that change devices and
    record test runs: a chart over a range reads a few rows per hour, whatever the fleet."""

    def record_test_run(
        self, organization_id: str, product_id: str, *, sources: Sequence[str], passed: bool, first: bool
    ) -> None: ...
    # Once more of ``measure`` at ``source`` (a unit enrolled with a factory token).
    def count_at(self, organization_id: str, product_id: str, measure: str, source: str) -> None: ...
    def since(
        self, within: str, since: datetime, *, product_id: str | None = None
    ) -> list[ActivityCount]: ...


@dataclass(frozen=True)
class DeviceIdentity:
    """What a device learns of itself (``GET /device/v1/me``), read on its own."""

    id: str
    product_id: str
    serial_number: str
    state: DeviceState
    online: bool
    last_seen_at: datetime | None


class DeviceTokenLookup(Protocol):
    """The reads behind every device request: one index probe by the token's keyed hash,
    without a unit of work around it (the hottest path there is)."""

    def find_by_token_hash(self, token_hash: str) -> Device | None: ...
    def identity_by_token_hash(self, token_hash: str) -> DeviceIdentity | None: ...


class DeviceCatalog(Protocol):
    """Devices as records: define, find, list, delete."""

    def add(self, device: Device) -> None: ...
    def add_many(self, devices: Iterable[NewDevice]) -> None: ...
    def get(self, device_id: str, *, within: str, include_owned: bool = False) -> Device | None: ...
    def list(self, *, within: str, filters: DeviceFilter, cursor: str | None, limit: int) -> Page[Device]: ...
    def existing_serial_numbers(self, product_id: str, serials: Iterable[str]) -> set[str]: ...
    def find_by_serial_number(self, product_id: str, serial_number: str) -> Device | None: ...
    def delete(self, device_id: str) -> None: ...


class DeviceLifecycleStore(Protocol):
    """Where a device is in its life: the factory line's and activation's writes."""

    def find_by_hardware_id(self, product_id: str, hardware_id: str) -> Device | None: ...
    def set_hardware_id(self, device_id: str, hardware_id: str) -> None: ...
    def set_serial_number(self, device_id: str, serial_number: str) -> None: ...
    def set_group(self, device_ids: Sequence[str], group_id: str) -> None: ...
    # save_state only while the stored state is still ``previous``: one winner of a race.
    def save_state_if(self, device: Device, previous: DeviceState) -> bool: ...
    def set_firmware_version(self, device_id: str, version: str, at: datetime) -> None: ...
    # A chunk of a station's ledger at once (services.station_chunk): one query each.
    def find_by_ids(self, device_ids: Sequence[str]) -> list[Device]: ...
    def find_by_hardware_ids(self, product_id: str, hardware_ids: Sequence[str]) -> list[Device]: ...
    def find_by_serial_numbers(self, product_id: str, serials: Sequence[str]) -> list[Device]: ...
    def add_units(self, devices: Sequence[Device]) -> None: ...  # ``add`` of each, one statement
    # ``save_state_if`` of each (device, previous) in order; False when any did not match.
    def save_states_if(self, changes: Sequence[tuple[Device, DeviceState]]) -> bool: ...
    def activation_candidates(self, device_ids: Sequence[str]) -> Sequence[tuple[Device, bool]]:
        """The defined or blessed devices among ``device_ids``, each with its product's
        ``requires_blessing``."""
        ...

    def activate_if_still(self, activations: Sequence[tuple[str, DeviceState, datetime]]) -> set[str]:
        """(device id, state it was read in, activated at): each device becomes activated
        only while still in that state, so of concurrent flushes exactly one activates it.
        A few statements for many devices; the ids this call activated."""
        ...


class DeviceCredentialStore(Protocol):
    """The keyed hashes of a device's secrets, and lookups by them."""

    def set_token(self, device_id: str, token_hash: str, at: datetime) -> None: ...
    def clear_token(self, device_id: str) -> None: ...
    def set_mqtt_password(self, device_id: str, password_hash: str, at: datetime) -> None: ...
    def clear_mqtt_password(self, device_id: str) -> None: ...
    def find_by_secret_hashes(
        self, token_hashes: Sequence[str], mqtt_password_hashes: Sequence[str]
    ) -> tuple[dict[str, Device], dict[str, Device]]:
        """Many devices by token hash and by MQTT password hash at once: (by token hash,
        by MQTT password hash); hashes that match nothing are absent."""
        ...

    def find_by_active_certificates(self, fingerprints: Sequence[str]) -> dict[str, Device]:
        """Many devices by the SHA-256 fingerprint of an active certificate (signed by Lineside
        or a verified CA) at once; fingerprints that match nothing are absent."""
        ...

    def credential_proofs(self, device_ids: Sequence[str]) -> dict[str, set[str]]:
        """Per device that exists and is not revoked: the keyed hashes of its current token
        and MQTT password and the fingerprints of its active certificates."""
        ...


class DeviceOwnership(Protocol):
    """Claims and transfers: who owns a device."""

    def find_by_claim_hash(self, claim_code_hash: str) -> Device | None: ...
    def claim_if_unclaimed(self, device_id: str, owner_id: str, at: datetime, actor: str) -> bool: ...
    def release_claim(self, device_id: str) -> None: ...
    def move_owner(
        self, device_id: str, from_owner: str, to_owner: str, at: datetime, actor: str
    ) -> bool: ...


class StaticTokenUnits(Protocol):
    """The devices of a static-token batch, a page at a time, and their secrets in bulk."""

    def batch_page(self, batch_id: str, after_id: str | None, limit: int) -> Sequence[BatchUnit]: ...
    def any_activated_in_batch(self, batch_id: str) -> bool: ...
    # (state, claimed, online, devices) for every mix the batch's devices have.
    def batch_figures(self, batch_id: str) -> Sequence[tuple[str, bool, bool, int]]: ...
    def set_tokens(self, token_hashes: Sequence[tuple[str, str]], at: datetime) -> None: ...
    def clear_tokens_of_batch(self, batch_id: str) -> None: ...
    def set_claim_codes(self, claim_hashes: Sequence[tuple[str, str]], generation: int) -> None: ...


class DeviceConnections(Protocol):
    """What the MQTT broker records: provisioning and presence."""

    def set_provisioned(self, device_id: str, at: datetime | None) -> None: ...
    def set_provisioned_if_not(self, device_id: str, at: datetime) -> bool:
        """Mark a device provisioned unless it already is: of two concurrent attempts, one wins."""
        ...

    def count_online(self, *, within: str, at_most: int) -> int:
        """How many devices the subtree made are online now, counting no further than
        ``at_most`` (the count reads only the online devices)."""
        ...

    def record_presence(self, updates: Sequence[tuple[str, bool, datetime]]) -> int:
        """(device id, online, at) for many devices in one executemany; a revoked device, or
        one whose stored last_seen_at is newer, is left alone. The rows written (where the
        driver reports it; else 0)."""
        ...


class DeviceRepository(
    DeviceCatalog,
    DeviceLifecycleStore,
    DeviceCredentialStore,
    DeviceOwnership,
    StaticTokenUnits,
    DeviceConnections,
    Protocol,
):
    """Every role at once, as one table holds them. Code that needs one role takes that
    Protocol, so a fake for it stays small."""
