"""The unit of work: one transaction and the repositories inside it."""

from __future__ import annotations

from types import TracebackType
from typing import Protocol, Self

from lineside.services.ports.claims import StaticTokenBatchRepository, TombstoneRepository
from lineside.services.ports.credentials import ApiKeyRepository, AuthorityRepository, CertificateRepository
from lineside.services.ports.devices import (
    ActivityRepository,
    DeviceCountRepository,
    DeviceGroupRepository,
    DeviceRepository,
    ProductRepository,
)
from lineside.services.ports.events import EventOutbox
from lineside.services.ports.factory import (
    FactoryTokenRepository,
    ProductionTokenRepository,
    TestRunRepository,
)
from lineside.services.ports.firmware import FirmwareRepository
from lineside.services.ports.people import OrganizationRepository, TransferRepository, UserRepository
from lineside.services.ports.stations import StationLedger, StationRepository
from lineside.services.ports.webhooks import WebhookRepository


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
    def activity(self) -> ActivityRepository: ...
    @property
    def certificates(self) -> CertificateRepository: ...
    @property
    def authorities(self) -> AuthorityRepository: ...
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
    @property
    def stations(self) -> StationRepository: ...
    @property
    def station_ledger(self) -> StationLedger: ...

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
