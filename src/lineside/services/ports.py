"""Ports: what the services need from the outside world, as Protocols.

Adapters implement these by technology (SqlUnitOfWork, FileCertificateAuthority, ...).
``within`` is always an organization path: a query sees that organization and its
sub-organizations, never a parent or a sibling.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, BinaryIO, Generic, Protocol, Self, TypeVar

from lineside.domain.events import DomainEvent
from lineside.domain.factory import FactoryToken, ProductionToken, TestRun
from lineside.domain.lifecycle import DeviceState
from lineside.domain.models import (
    ApiKey,
    ApplicationFirmwareAfter,
    Certificate,
    Device,
    DeviceGroup,
    FirmwareKind,
    FirmwareRelease,
    Organization,
    Product,
    StaticTokenBatch,
    User,
)
from lineside.domain.transfers import DeviceTransfer
from lineside.domain.webhooks import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


@dataclass(frozen=True)
class DeviceFilter:
    product_id: str | None = None
    state: DeviceState | None = None
    serial_number: str | None = None
    batch_id: str | None = None


@dataclass(frozen=True)
class EventFilter:
    type: str | None = None
    subject_id: str | None = None


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


class OrganizationRepository(Protocol):
    def add(self, organization: Organization) -> None: ...
    def get(self, organization_id: str, *, within: str) -> Organization | None: ...
    def list(self, *, within: str) -> list[Organization]: ...
    def set_device_quota(self, organization_id: str, quota: int | None) -> None: ...


class ApiKeyRepository(Protocol):
    def add(self, key: ApiKey, key_hash: str) -> None: ...
    def find_active_by_hash(self, key_hash: str) -> tuple[ApiKey, Organization] | None: ...
    def get(self, key_id: str, *, within: str) -> ApiKey | None: ...
    def list(self, *, within: str) -> list[ApiKey]: ...
    def revoke(self, key_id: str, at: datetime) -> None: ...


class ProductRepository(Protocol):
    def add(self, product: Product) -> None: ...
    def get(self, product_id: str, *, within: str) -> Product | None: ...
    def list(self, *, within: str, cursor: str | None, limit: int) -> Page[Product]: ...
    def name_taken(self, organization_id: str, name: str) -> bool: ...
    def set_requires_blessing(self, product_id: str, requires_blessing: bool) -> None: ...
    # MQTT provisioning: the key is public, only the keyed hash of the secret is kept.
    def find_by_provision_key(self, provision_key: str) -> tuple[Product, str | None] | None:
        """The product with this key and its secret's hash (None: provisioning disabled)."""
        ...

    def set_provisioning(
        self, product_id: str, provision_key: str | None, secret_hash: str | None
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
    def within(self, within: str) -> list[DeviceCount]: ...
    def by_state(self) -> dict[str, int]: ...
    # Rebuild every counter from the devices; how many were wrong.
    def recount(self) -> int: ...


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


class DeviceRepository(Protocol):
    def add_many(self, devices: Iterable[NewDevice]) -> None: ...
    def move_owner(
        self, device_id: str, from_owner: str, to_owner: str, at: datetime, actor: str
    ) -> bool: ...
    def get(self, device_id: str, *, within: str, include_owned: bool = False) -> Device | None: ...
    def list(self, *, within: str, filters: DeviceFilter, cursor: str | None, limit: int) -> Page[Device]: ...
    def find_by_claim_hash(self, claim_code_hash: str) -> Device | None: ...
    def claim_if_unclaimed(self, device_id: str, owner_id: str, at: datetime, actor: str) -> bool: ...
    def release_claim(self, device_id: str) -> None: ...
    def delete(self, device_id: str) -> None: ...
    def batch_page(self, batch_id: str, after_id: str | None, limit: int) -> Sequence[BatchUnit]: ...
    def any_activated_in_batch(self, batch_id: str) -> bool: ...
    def set_tokens(self, token_hashes: Sequence[tuple[str, str]], at: datetime) -> None: ...
    def clear_tokens_of_batch(self, batch_id: str) -> None: ...
    def set_claim_codes(self, claim_hashes: Sequence[tuple[str, str]], generation: int) -> None: ...
    def existing_serial_numbers(self, product_id: str, serials: Iterable[str]) -> set[str]: ...
    def set_token(self, device_id: str, token_hash: str, at: datetime) -> None: ...
    def clear_token(self, device_id: str) -> None: ...
    def add(self, device: Device) -> None: ...
    def find_by_hardware_id(self, product_id: str, hardware_id: str) -> Device | None: ...
    def find_by_serial_number(self, product_id: str, serial_number: str) -> Device | None: ...
    def set_hardware_id(self, device_id: str, hardware_id: str) -> None: ...
    # save_state only while the stored state is still ``previous``: one winner of a race.
    def save_state_if(self, device: Device, previous: DeviceState) -> bool: ...
    def set_firmware_version(self, device_id: str, version: str, at: datetime) -> None: ...
    # MQTT: credentials, presence, provisioning.
    def find_by_secret_hashes(
        self, token_hashes: Sequence[str], mqtt_password_hashes: Sequence[str]
    ) -> tuple[dict[str, Device], dict[str, Device]]:
        """Many devices by token hash and by MQTT password hash at once: (by token hash,
        by MQTT password hash); hashes that match nothing are absent."""
        ...

    def find_by_active_certificate(self, fingerprint_sha256: str) -> Device | None: ...
    def credential_proofs(self, device_ids: Sequence[str]) -> dict[str, set[str]]:
        """Per device that exists and is not revoked: the keyed hashes of its current token
        and MQTT password and the fingerprints of its active certificates."""
        ...

    def set_mqtt_password(self, device_id: str, password_hash: str, at: datetime) -> None: ...
    def clear_mqtt_password(self, device_id: str) -> None: ...
    def set_provisioned(self, device_id: str, at: datetime | None) -> None: ...
    def set_provisioned_if_not(self, device_id: str, at: datetime) -> bool:
        """Mark a device provisioned unless it already is: of two concurrent attempts, one wins."""
        ...

    def activation_candidates(self, device_ids: Sequence[str]) -> Sequence[tuple[Device, bool]]:
        """The defined or blessed devices among ``device_ids``, each with its product's
        ``requires_blessing``."""
        ...

    def activate_if_still(self, activations: Sequence[tuple[str, DeviceState, datetime]]) -> set[str]:
        """(device id, state it was read in, activated at): each device becomes activated
        only while still in that state, so of concurrent flushes exactly one activates it.
        A few statements for many devices; the ids this call activated."""
        ...

    def record_presence(self, updates: Sequence[tuple[str, bool, datetime]]) -> int:
        """(device id, online, at) for many devices in one executemany; a revoked device, or
        one whose stored last_seen_at is newer, is left alone. The rows written (where the
        driver reports it; else 0)."""
        ...


class UserRepository(Protocol):
    def add(self, user: User, password_hash: str) -> None: ...
    def find_by_email(self, email: str) -> tuple[User, str] | None: ...
    def get(self, user_id: str) -> User | None: ...
    def add_membership(self, user_id: str, organization_id: str, at: datetime) -> None: ...
    def organizations_of(self, user_id: str) -> list[Organization]: ...
    def add_session(
        self, session_id: str, user_id: str, token_hash: str, at: datetime, expires_at: datetime
    ) -> None: ...
    def find_session_user(self, token_hash: str, now: datetime) -> User | None: ...
    def revoke_session(self, token_hash: str, at: datetime) -> None: ...
    def password_hash(self, user_id: str) -> str | None: ...
    def set_password_hash(self, user_id: str, password_hash: str) -> None: ...
    def revoke_sessions_except(self, user_id: str, keep_token_hash: str, at: datetime) -> int: ...
    def add_invitation(
        self,
        invitation_id: str,
        organization_id: str,
        email: str,
        code_hash: str,
        at: datetime,
        expires_at: datetime,
    ) -> None: ...
    def open_invitation(self, code_hash: str, now: datetime) -> tuple[str, str, str] | None: ...
    def accept_invitation(self, invitation_id: str, at: datetime) -> bool: ...


class TransferRepository(Protocol):
    def add(self, transfer: DeviceTransfer, code_hash: str) -> None: ...
    def find_by_code_hash(self, code_hash: str) -> DeviceTransfer | None: ...
    def get(self, transfer_id: str) -> DeviceTransfer | None: ...
    def open_for_device(self, device_id: str, now: datetime) -> list[DeviceTransfer]: ...
    def accept(self, transfer_id: str, to_organization_id: str, at: datetime) -> bool: ...
    def cancel_open(self, device_id: str, at: datetime) -> int: ...


class StaticTokenBatchRepository(Protocol):
    def add(self, batch: StaticTokenBatch) -> None: ...
    def get(self, batch_id: str, *, within: str) -> StaticTokenBatch | None: ...
    def mark_exported(self, batch_id: str, at: datetime) -> bool: ...
    def clear_exported(self, batch_id: str) -> None: ...


class TombstoneRepository(Protocol):
    def add(
        self, claim_code_hash: str, device_id: str, organization_id: str, serial: str, at: datetime
    ) -> None: ...
    def find(self, claim_code_hash: str) -> tuple[str, datetime] | None: ...


class CertificateRepository(Protocol):
    def add(self, certificate: Certificate) -> None: ...
    def list_for_device(self, device_id: str) -> list[Certificate]: ...
    def revoke_active(self, device_id: str, at: datetime) -> list[Certificate]: ...
    def list_revoked(self, product_id: str) -> list[Certificate]: ...


class EventOutbox(Protocol):
    def add(self, event: DomainEvent) -> None: ...
    def add_many(self, events: Sequence[DomainEvent]) -> None:
        """Many events in one executemany, in the order given."""
        ...

    def list(
        self, *, within: str, filters: EventFilter, cursor: str | None, limit: int
    ) -> Page[DomainEvent]: ...


class FactoryTokenRepository(Protocol):
    """Factory enrollment tokens (owned by the factory feature)."""

    def add(self, token: FactoryToken, token_hash: str) -> None: ...
    # The unrevoked token with this hash, and the product it admits DUTs of.
    def find_active_by_hash(self, token_hash: str) -> tuple[FactoryToken, Product] | None: ...
    def get(self, token_id: str, *, within: str) -> FactoryToken | None: ...
    def list(self, *, within: str) -> list[FactoryToken]: ...
    def revoke(self, token_id: str, at: datetime) -> None: ...


class TestRunRepository(Protocol):
    """Test results of Devices Under Test (owned by the factory feature)."""

    def add(self, run: TestRun) -> None: ...
    # The newest run recorded at or after ``since`` (any run when None).
    def latest_for_device(self, device_id: str, *, since: datetime | None) -> TestRun | None: ...
    def list_for_device(self, device_id: str) -> list[TestRun]: ...  # newest first


class ProductionTokenRepository(Protocol):
    """Production enrollment tokens: plan id + token id (owned by the factory feature)."""

    def add(self, token: ProductionToken, token_hash: str) -> None: ...
    def find_by_hash(self, token_hash: str, *, within: str) -> ProductionToken | None: ...
    # Mark the token used by ``device_id``; False when it already was (one winner of a race).
    def use_if_unused(self, token_id: str, device_id: str, at: datetime) -> bool: ...


@dataclass(frozen=True)
class FirmwareDeployment:
    """One deployment of a release to a device group: the group's history, newest first."""

    id: str
    organization_id: str
    group_id: str
    release_id: str
    deployed_by: str
    created_at: datetime


class FirmwareRepository(Protocol):
    """Firmware releases and their deployments to device groups (owned by the firmware feature)."""

    def add_release(self, release: FirmwareRelease) -> None: ...
    def get_release(self, release_id: str, *, within: str | None = None) -> FirmwareRelease | None:
        """``within=None``: any organization's (only for a device, which is checked after)."""
        ...

    def list_releases(self, product_id: str, kind: FirmwareKind | None) -> list[FirmwareRelease]: ...
    def version_taken(self, product_id: str, kind: FirmwareKind, version: str) -> bool: ...
    def get_group(self, group_id: str, *, within: str | None = None) -> DeviceGroup | None: ...
    def set_group_release(self, group_id: str, release_id: str) -> None: ...
    def set_application_firmware_after(self, group_id: str, after: ApplicationFirmwareAfter) -> None: ...
    def add_deployment(self, deployment: FirmwareDeployment) -> None: ...
    def list_deployments(self, group_id: str) -> list[FirmwareDeployment]: ...
    def count_group_members(self, group_id: str) -> int: ...
    def factory_release_of_product(self, product_id: str) -> FirmwareRelease | None:
        """The release deployed to the product's factory group (the newest deployed, if several)."""
        ...

    def latest_event_sequence(self) -> int:
        """The sequence number of the newest event of any kind (0 when none): a cursor."""
        ...

    def deployed_events_after(self, sequence: int, limit: int) -> list[tuple[int, dict[str, Any]]]:
        """``firmware.deployed`` events after ``sequence``, oldest first: (sequence, data)."""
        ...

    def group_member_ids(self, group_id: str) -> list[str]: ...


@dataclass(frozen=True)
class StoredImage:
    sha256: str
    size_bytes: int


class FirmwareStore(Protocol):
    """Firmware image bytes, content-addressed: the same bytes are stored once."""

    async def put(self, chunks: AsyncIterable[bytes]) -> StoredImage:
        """Store the bytes as they arrive, hashing as it goes; nothing is kept for no bytes."""
        ...

    def open(self, sha256: str) -> BinaryIO | None:
        """The stored bytes for reading, None when absent; the caller closes it."""
        ...


@dataclass(frozen=True)
class DeliveryFilter:
    status: DeliveryStatus | None = None


@dataclass(frozen=True)
class DueDelivery:
    """A delivery a worker has leased until ``leased_until``, with what sending it needs."""

    delivery_id: str
    endpoint_id: str
    url: str
    sealed_secret: str = field(repr=False)
    event: DomainEvent
    attempt_count: int
    created_at: datetime
    leased_until: datetime


@dataclass(frozen=True)
class DeliveryChange:
    """Where a delivery stands after an attempt."""

    status: DeliveryStatus
    next_attempt_at: datetime | None
    completed_at: datetime | None


class WebhookRepository(Protocol):
    """Webhook endpoints, deliveries and attempts (owned by the webhooks feature)."""

    def backlog(self) -> tuple[int, datetime | None]: ...
    def add_endpoint(self, endpoint: WebhookEndpoint, sealed_secret: str) -> None: ...
    def get_endpoint(
        self, endpoint_id: str, *, within: str | None, lock: bool = False
    ) -> WebhookEndpoint | None:
        """``within=None``: any organization's (only for the worker). ``lock``: until the end
        of the transaction; whoever changes an endpoint's deliveries as a whole (disable,
        delete) locks the endpoint first, so two of them queue instead of deadlocking."""
        ...

    def list_endpoints(self, *, within: str, cursor: str | None, limit: int) -> Page[WebhookEndpoint]: ...
    def save_endpoint(self, endpoint: WebhookEndpoint) -> None:
        """Store event types, description and the disabled state (never the URL or secret)."""
        ...

    def set_sealed_secret(self, endpoint_id: str, sealed_secret: str) -> None: ...
    def delete_endpoint(self, endpoint_id: str) -> None:
        """The endpoint with its deliveries and their attempts."""
        ...

    def cancel_pending(self, endpoint_id: str, at: datetime) -> int: ...
    # The outbox dispatcher
    def any_undispatched(self) -> bool: ...
    def take_undispatched(self, limit: int) -> list[DomainEvent]:
        """The oldest events not yet dispatched, locked against other dispatchers (skipped
        by them, not waited for, on PostgreSQL)."""
        ...

    def enabled_endpoints_of(self, organization_ids: Iterable[str]) -> list[WebhookEndpoint]: ...
    def add_deliveries(self, deliveries: Sequence[WebhookDelivery]) -> None: ...
    def mark_dispatched(self, event_ids: Sequence[str], at: datetime) -> None: ...
    # The delivery loop
    def any_due(self, now: datetime) -> bool: ...
    def lease_due(self, now: datetime, until: datetime, limit: int) -> list[DueDelivery]:
        """Take up to ``limit`` due pending deliveries of enabled endpoints: set their lease,
        skipping (not waiting for) rows another worker is leasing right now."""
        ...

    def record_attempt(
        self, attempt: WebhookAttempt, *, leased_until: datetime, change: DeliveryChange
    ) -> bool:
        """Keep the attempt; apply ``change`` only if our lease still holds (True if it did)."""
        ...

    # Reading and re-sending
    def get_delivery(self, delivery_id: str, *, within: str) -> WebhookDelivery | None: ...
    def list_deliveries(
        self, endpoint_id: str, *, filters: DeliveryFilter, cursor: str | None, limit: int
    ) -> Page[WebhookDelivery]: ...
    def list_attempts(self, delivery_id: str) -> list[WebhookAttempt]: ...
    def make_due(self, delivery_id: str, at: datetime) -> None:
        """Pending again and due at ``at``, attempts and history kept."""
        ...


@dataclass(frozen=True)
class WebhookMessage:
    url: str
    message_id: str  # the webhook-id header: the delivery id
    body: bytes
    secret: str = field(repr=False)


@dataclass(frozen=True)
class SendResult:
    """What one attempt came to: a status code, or an error that kept it from getting one."""

    status_code: int | None
    error: str | None
    duration_ms: int


class WebhookSender(Protocol):
    def check_target(self, url: str) -> None:
        """Raise WebhookTargetRefused unless ``url`` may receive webhooks now."""
        ...

    async def send(self, message: WebhookMessage) -> SendResult:
        """Sign and POST once, never following a redirect; never raises for the receiver's
        faults (refused address, timeout, connection error): they come back as a result."""
        ...


class SecretBox(Protocol):
    """Seals secrets the server must read back (a webhook signing secret), unlike the ones it
    only compares, which are hashed. ``context`` binds a sealed value to its row."""

    def seal(self, plaintext: str, context: str) -> str: ...
    def open(self, sealed: str, context: str) -> str:
        """Raises ValueError if ``sealed`` was not sealed with this key and context."""
        ...


@dataclass(frozen=True)
class WebhookAdapters:
    sender: WebhookSender
    secret_box: SecretBox


class UnitOfWork(Protocol):
    """One transaction. Leaving the ``with`` block without ``commit()`` rolls back."""

    @property
    def organizations(self) -> OrganizationRepository: ...
    @property
    def api_keys(self) -> ApiKeyRepository: ...
    @property
    def products(self) -> ProductRepository: ...
    @property
    def groups(self) -> DeviceGroupRepository: ...
    @property
    def devices(self) -> DeviceRepository: ...
    @property
    def device_counts(self) -> DeviceCountRepository: ...
    @property
    def certificates(self) -> CertificateRepository: ...
    @property
    def events(self) -> EventOutbox: ...
    @property
    def users(self) -> UserRepository: ...
    @property
    def transfers(self) -> TransferRepository: ...
    @property
    def static_batches(self) -> StaticTokenBatchRepository: ...
    @property
    def tombstones(self) -> TombstoneRepository: ...
    @property
    def factory_tokens(self) -> FactoryTokenRepository: ...
    @property
    def test_runs(self) -> TestRunRepository: ...
    @property
    def production_tokens(self) -> ProductionTokenRepository: ...
    @property
    def firmware(self) -> FirmwareRepository: ...
    @property
    def webhooks(self) -> WebhookRepository: ...

    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
    def commit(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self, *, write: bool = True, snapshot: bool = True) -> UnitOfWork:
        """``snapshot=False``: a read of a single statement, without a transaction."""
        ...


class IssuedCertificateLike(Protocol):
    @property
    def certificate_pem(self) -> str: ...
    @property
    def serial_hex(self) -> str: ...
    @property
    def fingerprint_sha256(self) -> str: ...
    @property
    def subject(self) -> str: ...
    @property
    def not_before(self) -> datetime: ...
    @property
    def not_after(self) -> datetime: ...
    @property
    def private_key_pem(self) -> str | None: ...


@dataclass(frozen=True)
class RevokedSerial:
    serial_hex: str
    revoked_at: datetime


class CertificateAuthority(Protocol):
    def ca_certificate_pem(self, product_id: str, product_name: str) -> str: ...
    def sign_csr(
        self,
        product_id: str,
        product_name: str,
        csr_pem: str,
        *,
        device_id: str,
        serial_number: str,
    ) -> IssuedCertificateLike: ...
    def issue_with_new_key(
        self, product_id: str, product_name: str, *, device_id: str, serial_number: str
    ) -> IssuedCertificateLike: ...
    def crl_pem(self, product_id: str, product_name: str, revoked: Sequence[RevokedSerial]) -> str: ...


class Clock(Protocol):
    def __call__(self) -> datetime: ...


class PasswordHasher(Protocol):
    def hash(self, password: str) -> str: ...
    def verify(self, password_hash: str | None, password: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class Slot:
    """One attempt's place in a rate limit's window: taken (the attempt may go ahead, the
    ``count``-th of the window), or refused with the seconds until the window ends."""

    taken: bool
    count: int
    retry_after: int = 0


class RateLimiter(Protocol):
    def acquire(self, bucket: str, limit: int, window: timedelta) -> Slot: ...
    def release(self, bucket: str, window: timedelta) -> None: ...


# -- HTTP idempotency ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredResponse:
    """The first answer to a create call, as a retry with its Idempotency-Key gets it back."""

    status_code: int
    content_type: str
    body: str


KeptAnswer = TypeVar("KeptAnswer")


class IdempotencyStore(Protocol[KeptAnswer]):
    """First answers of create calls, replayed to retries (adapters.db.idempotency). A slot
    is where one (credential, key) pair's answer is kept; the caller only hands it back."""

    def scope(self, credential: str, key: str) -> KeptAnswer: ...
    # The stored answer, or None after claiming the slot for this request.
    def begin(self, scope: KeptAnswer, request_hash: str) -> StoredResponse | None: ...
    # Store the answer (None: the request failed, free the slot for a retry).
    def finish(self, scope: KeptAnswer, response: StoredResponse | None) -> None: ...
