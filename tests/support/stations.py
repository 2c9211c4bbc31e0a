"""An offline factory station for tests: its own SQLite database, seeded from the bundle the
server gave it (the organization, product, groups, factory token and fixtures' key, under the
same ids), where services.station_line runs the line and writes the ledger a test uploads.

Nothing here talks to the server: the station's clock, budget and window can be bent to make
the ledgers a dishonest or broken station would (dated outside its window, past its budget).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from lineside.bootstrap import Application, bootstrap
from lineside.domain.factory_pki import registered_device_id
from lineside.domain.models import (
    Principal,
)
from lineside.domain.stations import LedgerEntry, LedgerKind
from lineside.entrypoints.station.bundle import bundle_of
from lineside.entrypoints.station.sync import entry_document
from lineside.services import station_line
from lineside.services.authentication import authenticate_caller
from lineside.services.context import ServiceContext
from lineside.services.station_local import seed_station
from lineside.settings import Settings
from tests.support.factory import hardware_id


@dataclass
class StationSite:
    """A station at the factory: its application (database), what it was delegated, and the
    fixtures' principal there."""

    application: Application
    post: station_line.StationPost
    fixtures: Principal
    enrollment_token: str
    bundle: dict[str, Any]
    clock: Callable[[], datetime] | None = None  # None: the real time

    @property
    def ctx(self) -> ServiceContext:
        ctx = self.application.services
        return replace(ctx, clock=self.clock) if self.clock is not None else ctx

    def unit(self, *, passed: bool = True, serial: str | None = None) -> str:
        """A unit taken down the line (enrolled, tested, blessed or failed): its device id."""
        enrolled = station_line.enroll(
            self.ctx, self.post, self.enrollment_token, hardware_id=hardware_id(), serial_number=serial
        )
        device_id = enrolled.device.id
        station_line.record_test_run(
            self.ctx, self.post, self.fixtures, device_id, passed=passed, measurements={"volts": 3.3}
        )
        station_line.bless(self.ctx, self.post, self.fixtures, device_id)
        return device_id

    def enroll(self, serial: str | None = None, hardware: str | None = None) -> str:
        """A unit enrolled on the line (not tested yet): its device id."""
        enrolled = station_line.enroll(
            self.ctx,
            self.post,
            self.enrollment_token,
            hardware_id=hardware or hardware_id(),
            serial_number=serial,
        )
        return enrolled.device.id

    def pool_token(self, device_id: str) -> str:
        """The unit's token from the station's pool, as the line's credentials request hands it out."""
        issued = station_line.issue_pool_token(self.ctx, self.post, self.fixtures, device_id)
        assert issued.secret is not None
        return issued.secret

    def record_certificate(self, device_id: str, certificate: x509.Certificate) -> None:
        """The ledger entry of a device certificate the station's CA issued on the line."""
        facts = self.application.services.x509.read_device_certificate(
            certificate.public_bytes(serialization.Encoding.DER), ()
        )
        data = {
            "device_id": device_id,
            "fingerprint_sha256": facts.fingerprint_sha256,
            "serial_hex": facts.serial_hex,
            "subject": facts.subject,
            "not_before": facts.not_before.isoformat(),
            "not_after": facts.not_after.isoformat(),
        }
        with self.ctx.unit_of_work() as uow:
            station_line.append_entry(self.ctx, uow, self.post, LedgerKind.CERTIFICATE, data)
            uow.commit()

    def entries(self) -> list[LedgerEntry]:
        with self.application.services.unit_of_work(write=False) as uow:
            return list(uow.station_ledger.entries(0, 100_000))


@contextmanager
def station_site(bundle: dict[str, Any], directory: Path) -> Iterator[StationSite]:
    """A station's database bootstrapped from ``bundle`` in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    settings = Settings(
        database_url=f"sqlite:///{directory / 'station.db'}", data_dir=directory / "data", _env_file=None
    )
    application = bootstrap(settings, migrate=True)
    try:
        secrets_ = bundle["secrets"]
        # What `lineside station run` makes of the bundle (entrypoints.station), seeded alike.
        delegated = bundle_of(directory / "bundle.json", bundle)
        seed_station(application.services, delegated.seed, delegated.station_id)
        post = delegated.post
        fixtures = authenticate_caller(application.services, secrets_["fixture_api_key"])
        yield StationSite(application, post, fixtures, secrets_["enrollment_token"], bundle)
    finally:
        application.close()


def pool_of(bundle: dict[str, Any]) -> list[tuple[str, str]]:
    """The bundle's token pool: (device id, device token), in the order the line hands them out."""
    return [(str(device_id), str(token)) for device_id, token in bundle["secrets"].get("pool", [])]


def wire(entry: LedgerEntry) -> dict[str, Any]:
    """An entry as the station uploads it."""
    return entry_document(entry)


def unit_certificate(bundle: dict[str, Any], serial: str, device_id: str | None = None) -> x509.Certificate:
    """A device certificate the station's CA signs on the line: CN = the unit's id (by default
    the id the station gives ``serial``; a pool station's id from its pool), subject
    serialNumber = the serial."""
    ca_key = serialization.load_pem_private_key(bundle["secrets"]["ca_key_pem"].encode(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    ca = x509.load_pem_x509_certificate(bundle["certificate_authority_pem"].encode())
    device_id = device_id or registered_device_id(bundle["product"]["id"], serial)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, device_id),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, serial),
        ]
    )
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(int.from_bytes(secrets.token_bytes(16)) >> 1)
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(min(now + timedelta(days=365), ca.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
