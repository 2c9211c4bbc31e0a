"""Ports: what the services need from the outside world, as Protocols.

Adapters implement these by technology (SqlUnitOfWork, FileCertificateAuthority, ...).
``within`` is always an organization path: a query sees that organization and its
sub-organizations, never a parent or a sibling.

One module per role; this package re-exports them all.
"""

from lineside.services.ports.claims import StaticTokenBatchRepository, TombstoneRepository
from lineside.services.ports.common import Clock, Page, PasswordHasher
from lineside.services.ports.credentials import (
    ApiKeyRepository,
    AuthorityFacts,
    AuthorityRepository,
    CertificateAuthority,
    CertificateInspector,
    CertificateRepository,
    DeviceCertificateFacts,
    IssuedCertificateLike,
    RevokedSerial,
)
from lineside.services.ports.devices import (
    ActivityCount,
    ActivityRepository,
    BatchUnit,
    DeviceCatalog,
    DeviceConnections,
    DeviceCount,
    DeviceCountRepository,
    DeviceCredentialStore,
    DeviceFilter,
    DeviceGroupRepository,
    DeviceIdentity,
    DeviceLifecycleStore,
    DeviceOwnership,
    DeviceRepository,
    DeviceTokenLookup,
    Measure,
    NewDevice,
    ProductRepository,
    StaticTokenUnits,
)
from lineside.services.ports.events import EventFilter, EventOutbox
from lineside.services.ports.factory import (
    FactoryTokenRepository,
    ProductionTokenRepository,
    TestRunRepository,
)
from lineside.services.ports.firmware import (
    FirmwareDeployment,
    FirmwareRepository,
    FirmwareStore,
    StoredImage,
)
from lineside.services.ports.guards import IdempotencyStore, RateLimiter, Slot, StoredResponse
from lineside.services.ports.people import OrganizationRepository, TransferRepository, UserRepository
from lineside.services.ports.stations import (
    SignatureCheck,
    StationCredentials,
    StationKeys,
    StationLedger,
    StationRepository,
)
from lineside.services.ports.units import UnitOfWork, UnitOfWorkFactory
from lineside.services.ports.webhooks import (
    DeliveryChange,
    DeliveryFilter,
    DueDelivery,
    SecretBox,
    SendResult,
    WebhookAdapters,
    WebhookMessage,
    WebhookRepository,
    WebhookSender,
)

__all__ = [
    "ActivityCount",
    "ActivityRepository",
    "ApiKeyRepository",
    "AuthorityFacts",
    "AuthorityRepository",
    "BatchUnit",
    "CertificateAuthority",
    "CertificateInspector",
    "CertificateRepository",
    "Clock",
    "DeliveryChange",
    "DeliveryFilter",
    "DeviceCatalog",
    "DeviceCertificateFacts",
    "DeviceConnections",
    "DeviceCount",
    "DeviceCountRepository",
    "DeviceCredentialStore",
    "DeviceFilter",
    "DeviceGroupRepository",
    "DeviceIdentity",
    "DeviceLifecycleStore",
    "DeviceOwnership",
    "DeviceRepository",
    "DeviceTokenLookup",
    "DueDelivery",
    "EventFilter",
    "EventOutbox",
    "FactoryTokenRepository",
    "FirmwareDeployment",
    "FirmwareRepository",
    "FirmwareStore",
    "IdempotencyStore",
    "IssuedCertificateLike",
    "Measure",
    "NewDevice",
    "OrganizationRepository",
    "Page",
    "PasswordHasher",
    "ProductRepository",
    "ProductionTokenRepository",
    "RateLimiter",
    "RevokedSerial",
    "SecretBox",
    "SendResult",
    "SignatureCheck",
    "Slot",
    "StaticTokenBatchRepository",
    "StaticTokenUnits",
    "StationCredentials",
    "StationKeys",
    "StationLedger",
    "StationRepository",
    "StoredImage",
    "StoredResponse",
    "TestRunRepository",
    "TombstoneRepository",
    "TransferRepository",
    "UnitOfWork",
    "UnitOfWorkFactory",
    "UserRepository",
    "WebhookAdapters",
    "WebhookMessage",
    "WebhookRepository",
    "WebhookSender",
]
