"""The schema, in SQLAlchemy Core. Alembic migrations are written against this."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, on SQLite (which keeps no zone) as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JsonDocument: Any = JSON().with_variant(JSONB(), "postgresql")
Uuid = String(36)


def _id() -> Column[str]:
    return Column("id", Uuid, primary_key=True)


def _created_at() -> Column[datetime]:
    return Column("created_at", UtcDateTime, nullable=False)


organizations = Table(
    "organizations",
    metadata,
    _id(),
    Column("name", String(200), nullable=False),
    Column("parent_id", Uuid, ForeignKey("organizations.id"), nullable=True),
    Column("path", String(2000), nullable=False, unique=True),
    # personal: made for one end user at sign-up; manufacturer: everything else.
    Column("kind", String(20), nullable=False, server_default="manufacturer"),
    # Devices this organization may define; NULL means the installation's default.
    Column("device_quota", Integer, nullable=True),
    _created_at(),
)

api_keys = Table(
    "api_keys",
    metadata,
    _id(),
    Column("organization_id", Uuid, ForeignKey("organizations.id"), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("scopes", String(200), nullable=False),
    Column("prefix", String(16), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    _created_at(),
    Column("revoked_at", UtcDateTime, nullable=True),
)

products = Table(
    "products",
    metadata,
    _id(),
    Column("organization_id", Uuid, ForeignKey("organizations.id"), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("metadata_fields", JsonDocument, nullable=False),
    _created_at(),
    # create | predefined: see domain.models.EnrollmentPolicy.
    Column("enrollment_policy", String(20), nullable=False, server_default="create"),
    # When set, only a blessed device activates: a merely defined one may connect but stays defined.
    Column("requires_blessing", Boolean, nullable=False, server_default=false()),
    # MQTT provisioning (ThingsBoard's provisionDeviceKey / provisionDeviceSecret): the key is
    # public and names the product, the secret is kept as a keyed hash only.
    Column("provision_key", String(64), nullable=True, unique=True),
    Column("provision_secret_hash", String(64), nullable=True),
    # Factory PKI: which devices its own CAs register (domain.models.RegistrationPolicy), where
    # their certificates name them, and whether one may come back with another certificate.
    Column("registration_policy", String(16), nullable=False, server_default="open"),
    Column("registration_identity", String(16), nullable=False, server_default="cn"),
    Column("reregistration", Boolean, nullable=False, server_default=false()),
    UniqueConstraint("organization_id", "name"),
)

device_groups = Table(
    "device_groups",
    metadata,
    _id(),
    Column("organization_id", Uuid, ForeignKey("organizations.id"), nullable=False),
    Column("product_id", Uuid, ForeignKey("products.id"), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("kind", String(20), nullable=False),
    _created_at(),
    # blessing | activation: see domain.models.ApplicationFirmwareAfter.
    Column("application_firmware_after", String(20), nullable=False, server_default="blessing"),
    # The release deployed to the group; firmware_deployments keeps the history.
    Column("release_id", Uuid, nullable=True),
    UniqueConstraint("product_id", "name"),
)

# Lifecycle timestamps, one per state: see domain.lifecycle.STATE_TIMESTAMP_FIELD.
LIFECYCLE_COLUMNS = (
    "defined_at",
    "under_test_at",
    "blessed_at",
    "failed_at",
    "activated_at",
    "revoked_at",
    "pending_approval_at",
)


def _only_set_null(column: str) -> dict[str, Any]:
    """A partial index over the rows where ``column`` is still NULL, on both backends."""
    condition = text(f"{column} IS NULL")
    return {"postgresql_where": condition, "sqlite_where": condition}


ONLY_ONLINE: dict[str, Any] = {"postgresql_where": text("online"), "sqlite_where": text("online = 1")}


def _only_set(column: str) -> dict[str, Any]:
    """A partial index over the rows where ``column`` is set, on both backends."""
    condition = text(f"{column} IS NOT NULL")
    return {"postgresql_where": condition, "sqlite_where": condition}


# The devices table is the hot path of a 100,000-device batch, so it carries only the
# indexes reads need, partial where most rows are NULL, and no foreign keys: each costs a
# lookup per inserted row, and the services only ever write ids they have just loaded
# (ADR 5). Lifecycle timestamps, one per state: see domain.lifecycle.STATE_TIMESTAMP_FIELD.
# Every list reads a page through an index that ends in ``id`` (the page order), one per
# organization column and filter (adapters.db.visible_pages); most grow at their right edge
# (ids are time-ordered), so they cost a batch little.
devices = Table(
    "devices",
    metadata,
    _id(),
    Column("organization_id", Uuid, nullable=False),
    Column("product_id", Uuid, nullable=False),
    Column("group_id", Uuid, nullable=True),
    Column("batch_id", Uuid, nullable=True),
    Column("serial_number", String(128), nullable=False),
    Column("mac", String(17), nullable=True),
    Column("metadata", JsonDocument, nullable=False),
    Column("state", String(20), nullable=False),
    Column("owner_organization_id", Uuid, nullable=True),
    # The keyed hash of the current device token: one index probe authenticates a device.
    Column("token_hash", String(64), nullable=True),
    Column("token_issued_at", UtcDateTime, nullable=True),
    # The keyed hash of the claim code behind the QR label (static tokens); see ADR 4.
    Column("claim_code_hash", String(64), nullable=True),
    Column("claim_generation", Integer, nullable=False, server_default="0"),
    Column("claimed_at", UtcDateTime, nullable=True),
    Column("claimed_by", String(100), nullable=True),
    _created_at(),
    *(Column(name, UtcDateTime, nullable=True) for name in LIFECYCLE_COLUMNS),
    # The MAC or chip id a factory fixture reads off the unit; unique within a product.
    Column("hardware_id", String(64), nullable=True),
    # The factory enrollment token a DUT enrolled with; blessing clears it.
    Column("factory_token_id", Uuid, nullable=True),
    Column("firmware_version", String(64), nullable=True),
    Column("firmware_reported_at", UtcDateTime, nullable=True),
    # The keyed hash of the device's MQTT password (an alternative to its device token).
    Column("mqtt_password_hash", String(64), nullable=True),
    Column("mqtt_password_issued_at", UtcDateTime, nullable=True),
    # Presence, written in batches by the broker side (see services.presence).
    Column("online", Boolean, nullable=False, server_default=false()),
    Column("last_seen_at", UtcDateTime, nullable=True),
    # When MQTT provisioning handed out its credentials; a pre-defined device provisions once.
    Column("provisioned_at", UtcDateTime, nullable=True),
    UniqueConstraint("product_id", "serial_number"),
    Index(
        "ix_devices_product_hardware_id", "product_id", "hardware_id", unique=True, **_only_set("hardware_id")
    ),
    Index("ix_devices_token_hash", "token_hash", unique=True, **_only_set("token_hash")),
    Index(
        "ix_devices_mqtt_password_hash", "mqtt_password_hash", unique=True, **_only_set("mqtt_password_hash")
    ),
    Index("ix_devices_claim_code_hash", "claim_code_hash", unique=True, **_only_set("claim_code_hash")),
    Index("ix_devices_organization_id_id", "organization_id", "id"),
    Index("ix_devices_organization_id_state_id", "organization_id", "state", "id"),
    Index("ix_devices_organization_id_serial_number", "organization_id", "serial_number"),
    Index("ix_devices_product_id_id", "product_id", "id"),
    Index("ix_devices_batch_id_id", "batch_id", "id", **_only_set("batch_id")),
    Index("ix_devices_group_id_id", "group_id", "id", **_only_set("group_id")),
    # The console's searches and filters, each reading only the rows that match (migration 0009).
    Index("ix_devices_organization_id_mac", "organization_id", "mac", **_only_set("mac")),
    Index(
        "ix_devices_organization_id_hardware_id", "organization_id", "hardware_id", **_only_set("hardware_id")
    ),
    Index(
        "ix_devices_product_id_firmware_version_id",
        "product_id",
        "firmware_version",
        "id",
        **_only_set("firmware_version"),
    ),
    # Only the devices online: "online now" counts these, not the fleet.
    Index("ix_devices_organization_id_online_id", "organization_id", "id", **ONLY_ONLINE),
    Index(
        "ix_devices_owner_organization_id_id",
        "owner_organization_id",
        "id",
        **_only_set("owner_organization_id"),
    ),
)


# Devices that arrived in each lifecycle state (and were claimed, retested), and test runs per
# fixture and per factory token, per product and hour: written with the change like
# device_counts (adapters.db.activity), so the console's charts read a few rows per hour of
# the range chosen, however big the fleet.
activity_counts = Table(
    "activity_counts",
    metadata,
    Column("organization_id", Uuid, primary_key=True),
    Column("product_id", Uuid, primary_key=True),
    Column("hour", UtcDateTime, primary_key=True),
    Column("measure", String(32), primary_key=True),
    # '' for the product as a whole; 'fixture:<name>' or 'token:<factory token id>' for a source.
    Column("source", String(140), primary_key=True),
    Column("count", BigInteger, nullable=False),
    Index("ix_activity_counts_product_id_hour", "product_id", "hour"),
)


# How many devices each organization made, per product, lifecycle state and claimed or not:
# changed in the transaction that changes the devices (adapters.db.device_counts), so the
# quota check and the funnel read a few rows instead of counting a million.
# ``lineside db recount`` rebuilds it from the devices.
device_counts = Table(
    "device_counts",
    metadata,
    Column("organization_id", Uuid, primary_key=True),
    Column("product_id", Uuid, primary_key=True),
    Column("state", String(20), primary_key=True),
    Column("claimed", Boolean, primary_key=True),
    Column("devices", BigInteger, nullable=False),
)


certificates = Table(
    "certificates",
    metadata,
    _id(),
    # No foreign key: a deleted device's revoked certificates must stay on the CRL.
    Column("device_id", Uuid, nullable=False, index=True),
    Column("organization_id", Uuid, ForeignKey("organizations.id"), nullable=False),
    Column("product_id", Uuid, ForeignKey("products.id"), nullable=False),
    Column("serial_hex", String(64), nullable=False, unique=True),
    Column("fingerprint_sha256", String(64), nullable=False),
    Column("subject", String(500), nullable=False),
    Column("not_before", UtcDateTime, nullable=False),
    Column("not_after", UtcDateTime, nullable=False),
    _created_at(),
    Column("revoked_at", UtcDateTime, nullable=True),
    # A certificate a maker's CA signed (factory PKI; migration 0010): the CA, and the serial
    # it gave (its CRLs name that; ``serial_hex`` holds the fingerprint, unique).
    Column("authority_id", Uuid, nullable=True),
    Column("issuer_serial_hex", String(64), nullable=True),
    Index("ix_certificates_product_revoked", "product_id", "revoked_at"),
    Index(
        "ix_certificates_authority_id_issuer_serial_hex",
        "authority_id",
        "issuer_serial_hex",
        **_only_set("authority_id"),
    ),
    # A certificate-authenticated MQTT connect finds its device by fingerprint (migration 0010).
    Index("ix_certificates_fingerprint_sha256", "fingerprint_sha256"),
)

# Makers' own CAs (factory PKI, migration 0010): a device whose certificate chains to a
# verified, enabled one registers itself into its product on first connection.
certificate_authorities = Table(
    "certificate_authorities",
    metadata,
    _id(),
    Column("organization_id", Uuid, ForeignKey("organizations.id"), nullable=False),
    Column("product_id", Uuid, ForeignKey("products.id"), nullable=False, index=True),
    Column("subject", String(500), nullable=False),
    Column("key_id", String(128), nullable=False, index=True),
    Column("fingerprint_sha256", String(64), nullable=False),
    Column("certificate_pem", Text, nullable=False),
    Column("not_after", UtcDateTime, nullable=False),
    Column("status", String(24), nullable=False),
    # The keyed hash of the one-time verification challenge, until it is answered.
    Column("challenge_hash", String(64), nullable=True),
    Column("challenge_expires_at", UtcDateTime, nullable=True),
    _created_at(),
    Column("verified_at", UtcDateTime, nullable=True),
    Column("crl_updated_at", UtcDateTime, nullable=True),
    Column("expiry_warned_at", UtcDateTime, nullable=True),
    # Set when the station the CA was made for is revoked: devices it registered before keep
    # connecting, no new one registers.
    Column("registration_closed_at", UtcDateTime, nullable=True),
    Column("station_id", Uuid, nullable=True),  # the offline station it was made for
    UniqueConstraint("product_id", "fingerprint_sha256"),
)

# The serials a registered CA's latest CRL lists: refused at registration and connection.
authority_revocations = Table(
    "authority_revocations",
    metadata,
    Column(
        "authority_id", Uuid, ForeignKey("certificate_authorities.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("serial_hex", String(64), primary_key=True),
)

# The outbox: every event, written in the transaction of the change it records.
events = Table(
    "events",
    metadata,
    Column(
        "sequence",
        BigInteger().with_variant(Integer(), "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    Column("id", Uuid, nullable=False, unique=True),
    Column("type", String(64), nullable=False),
    Column("organization_id", Uuid, ForeignKey("organizations.id"), nullable=False),
    Column("actor", String(100), nullable=False),
    Column("subject_type", String(32), nullable=False),
    Column("subject_id", Uuid, nullable=False),
    Column("data", JsonDocument, nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
    # Set where it differs from occurred_at: a station's action, replayed at its sync.
    Column("recorded_at", UtcDateTime, nullable=True),
    # Set once the webhook dispatcher has made this event's deliveries.
    Column("dispatched_at", UtcDateTime, nullable=True),
    Index("ix_events_undispatched", "sequence", **_only_set_null("dispatched_at")),
    # The audit log's pages, in sequence order, per organization, type and subject.
    Index("ix_events_organization_id_sequence", "organization_id", "sequence"),
    Index("ix_events_organization_id_type_sequence", "organization_id", "type", "sequence"),
    Index("ix_events_subject_id_sequence", "subject_id", "sequence"),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    # The keyed hash of (credential, Idempotency-Key): the credential itself is never stored.
    Column("scope_hash", String(64), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("content_type", String(100), nullable=True),
    Column("body", Text, nullable=True),
    _created_at(),
)

static_token_batches = Table(
    "static_token_batches",
    metadata,
    _id(),
    Column("organization_id", Uuid, ForeignKey("organizations.id"), nullable=False, index=True),
    Column("product_id", Uuid, ForeignKey("products.id"), nullable=False),
    Column("count", Integer, nullable=False),
    Column("metadata_columns", JsonDocument, nullable=False),
    _created_at(),
    # Set by the one download that shows the device tokens; cleared by a regeneration.
    Column("exported_at", UtcDateTime, nullable=True),
)

# A deleted device leaves this behind so its QR code can say "deleted" instead of "unknown".
device_tombstones = Table(
    "device_tombstones",
    metadata,
    Column("claim_code_hash", String(64), primary_key=True),
    Column("device_id", Uuid, nullable=False),
    Column("organization_id", Uuid, ForeignKey("organizations.id"), nullable=False),
    Column("serial_number", String(128), nullable=False),
    Column("deleted_at", UtcDateTime, nullable=False),
)

# An owner's offer to hand a device to another person: accepted once, by whoever holds the
# code (shown to the owner once, as a link), before it expires, unless cancelled.
device_transfers = Table(
    "device_transfers",
    metadata,
    _id(),
    Column("device_id", Uuid, nullable=False, index=True),
    Column("from_organization_id", Uuid, ForeignKey("organizations.id"), nullable=False, index=True),
    Column("code_hash", String(64), nullable=False, unique=True),
    Column("offered_by", String(80), nullable=False),
    _created_at(),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("accepted_at", UtcDateTime, nullable=True),
    Column("to_organization_id", Uuid, ForeignKey("organizations.id"), nullable=True),
    Column("cancelled_at", UtcDateTime, nullable=True),
)

users = Table(
    "users",
    metadata,
    _id(),
    Column("email", String(320), nullable=False, unique=True),
    Column("password_hash", String(200), nullable=False),
    Column("personal_organization_id", Uuid, ForeignKey("organizations.id"), nullable=False),
    _created_at(),
)

memberships = Table(
    "memberships",
    metadata,
    Column("user_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("organization_id", Uuid, ForeignKey("organizations.id"), primary_key=True),
    _created_at(),
    # domain.models.Role; memberships made before roles existed were admins (migration 0008).
    Column("role", String(16), nullable=False, server_default="admin"),
)

invitations = Table(
    "invitations",
    metadata,
    _id(),
    Column("organization_id", Uuid, ForeignKey("organizations.id"), nullable=False, index=True),
    Column("email", String(320), nullable=False),
    Column("code_hash", String(64), nullable=False, unique=True),
    _created_at(),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("accepted_at", UtcDateTime, nullable=True),
    Column("role", String(16), nullable=False, server_default="admin"),  # what accepting grants
)

# Bearer tokens of signed-in people (API and the session cookie of the web pages).
user_sessions = Table(
    "user_sessions",
    metadata,
    _id(),
    Column("user_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    _created_at(),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime, nullable=True),
)

# Fixed-window counters shared by every server process (claim attempts, sign-ins).
rate_limits = Table(
    "rate_limits",
    metadata,
    Column("bucket", String(200), primary_key=True),
    Column("window_start", UtcDateTime, nullable=False),
    Column("count", Integer, nullable=False),
)


# -- the connected factory ---------------------------------------------------------------

# A factory line's enrollment token: admits DUTs of one product, and nothing else.
factory_enrollment_tokens = Table(
    "factory_enrollment_tokens",
    metadata,
    _id(),
    Column("organization_id", Uuid, ForeignKey("organizations.id"), nullable=False, index=True),
    Column("product_id", Uuid, ForeignKey("products.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("prefix", String(16), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_by", String(100), nullable=False),
    _created_at(),
    Column("revoked_at", UtcDateTime, nullable=True),
)

test_runs = Table(
    "test_runs",
    metadata,
    _id(),
    Column("device_id", Uuid, nullable=False),
    Column("organization_id", Uuid, ForeignKey("organizations.id"), nullable=False),
    Column("passed", Boolean, nullable=False),
    Column("measurements", JsonDocument, nullable=False),
    Column("fixture", String(200), nullable=True),
    Column("operator", String(200), nullable=True),
    Column("recorded_by", String(100), nullable=False),
    _created_at(),
    Index("ix_test_runs_device_id_created_at", "device_id", "created_at"),
)

# Production enrollment tokens (Electric Imp's plan id + token id): short-lived, single-use.
production_tokens = Table(
    "production_tokens",
    metadata,
    _id(),
    Column("organization_id", Uuid, ForeignKey("organizations.id"), nullable=False, index=True),
    Column("product_id", Uuid, nullable=True),
    Column("plan_id", String(64), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_by", String(100), nullable=False),
    _created_at(),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("used_at", UtcDateTime, nullable=True),
    Column("device_id", Uuid, nullable=True),
    # The console lists an organization's newest (migration 0009).
    Index("ix_production_tokens_organization_id_id", "organization_id", "id"),
)

# -- firmware ----------------------------------------------------------------------------

firmware_releases = Table(
    "firmware_releases",
    metadata,
    _id(),
    Column("organization_id", Uuid, ForeignKey("organizations.id"), nullable=False, index=True),
    Column("product_id", Uuid, ForeignKey("products.id"), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("version", String(64), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("notes", String(2000), nullable=True),
    Column("created_by", String(100), nullable=False),
    _created_at(),
    UniqueConstraint("product_id", "kind", "version", name="uq_firmware_releases_product_kind_version"),
)

firmware_deployments = Table(
    "firmware_deployments",
    metadata,
    _id(),
    Column("organization_id", Uuid, ForeignKey("organizations.id"), nullable=False),
    Column("group_id", Uuid, ForeignKey("device_groups.id"), nullable=False, index=True),
    Column("release_id", Uuid, ForeignKey("firmware_releases.id"), nullable=False),
    Column("deployed_by", String(100), nullable=False),
    _created_at(),
)

# -- webhooks ----------------------------------------------------------------------------

webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    _id(),
    Column("organization_id", Uuid, ForeignKey("organizations.id"), nullable=False, index=True),
    Column("url", String(2000), nullable=False),
    Column("event_types", JsonDocument, nullable=False),
    Column("description", String(500), nullable=True),
    # The signing secret, sealed with AES-GCM under a key derived from the server key: the
    # sender needs it back to sign, so a keyed hash cannot do here.
    Column("sealed_secret", Text, nullable=False),
    _created_at(),
    Column("disabled_at", UtcDateTime, nullable=True),
    Column("disabled_reason", String(500), nullable=True),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    _id(),  # also the webhook-id header: the same on every retry, so receivers can dedupe
    Column("endpoint_id", Uuid, ForeignKey("webhook_endpoints.id"), nullable=False),
    Column("organization_id", Uuid, ForeignKey("organizations.id"), nullable=False),
    Column("event_id", Uuid, nullable=False),
    Column("event_type", String(64), nullable=False),
    # pending | succeeded | failed (gave up) | cancelled (endpoint disabled)
    Column("status", String(20), nullable=False),
    Column("attempt_count", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", UtcDateTime, nullable=True),
    # A worker's lease: until then no other worker sends this delivery.
    Column("locked_until", UtcDateTime, nullable=True),
    Column("last_status_code", Integer, nullable=True),
    Column("last_error", String(500), nullable=True),
    _created_at(),
    Column("completed_at", UtcDateTime, nullable=True),
    Index("ix_webhook_deliveries_due", "next_attempt_at", **_only_set("next_attempt_at")),
    Index("ix_webhook_deliveries_endpoint_id_id", "endpoint_id", "id"),
    Index("ix_webhook_deliveries_endpoint_id_status_id", "endpoint_id", "status", "id"),
)

webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    _id(),
    Column("delivery_id", Uuid, ForeignKey("webhook_deliveries.id"), nullable=False, index=True),
    Column("attempted_at", UtcDateTime, nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("error", String(500), nullable=True),
    Column("duration_ms", Integer, nullable=False),
)


# Offline factory stations the server delegated a product's line to (domain.stations).
stations = Table(
    "stations",
    metadata,
    _id(),
    Column("organization_id", Uuid, ForeignKey("organizations.id"), nullable=False, index=True),
    Column("product_id", Uuid, ForeignKey("products.id"), nullable=False),
    Column("factory_token_id", Uuid, nullable=False),
    Column("name", String(200), nullable=False),
    Column("budget", Integer, nullable=False),
    Column("pool_size", Integer, nullable=False, server_default="0"),  # device ids with tokens given
    Column("not_before", UtcDateTime, nullable=False),
    Column("not_after", UtcDateTime, nullable=False),
    Column("verify_key_pem", Text, nullable=False),
    Column("authority_id", Uuid, nullable=True),
    _created_at(),
    Column("created_by", String(100), nullable=False),
    Column("revoked_at", UtcDateTime, nullable=True),
    # How far the station's ledger has been replayed here, and what it made.
    Column("head_sequence", BigInteger, nullable=False, server_default="0"),
    Column("head_hash", String(64), nullable=False, server_default=""),
    Column("devices_made", Integer, nullable=False, server_default="0"),
    Column("last_sync_at", UtcDateTime, nullable=True),
    Column("warned", String(32), nullable=False, server_default=""),  # "budget,window" once said
)

# The device ids (and their tokens' keyed hashes) a station was given for token devices: a
# device from the pool authenticates before the station syncs. A station keeps the same rows
# (hashed under its own key) to hand out the next id; the tokens themselves are in its bundle.
station_pool = Table(
    "station_pool",
    metadata,
    Column("device_id", Uuid, primary_key=True),
    Column("station_id", Uuid, nullable=False),
    Column("position", Integer, nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("opened_at", UtcDateTime, nullable=True),  # first used (a unit enrolled, or it connected)
    Index("ix_station_pool_station_id_position", "station_id", "position"),
)

# The devices each station made (by its ledger, its CA's registrations or its pool's tokens):
# a station's ledger and CA may touch these and no other device of the product.
station_devices = Table(
    "station_devices",
    metadata,
    Column("device_id", Uuid, primary_key=True),
    Column("station_id", Uuid, nullable=False, index=True),
)

# A station's own ledger, on the station's database (the server never writes it): every
# action, hash-chained and signed, until the server has replayed it.
station_ledger = Table(
    "station_ledger",
    metadata,
    Column("sequence", BigInteger, primary_key=True, autoincrement=False),
    Column("at", UtcDateTime, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("data", JSON, nullable=False),
    Column("previous_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Column("signature", String(200), nullable=False),
    Column("synced_at", UtcDateTime, nullable=True),
)
