"""``lineside backup`` and ``lineside restore``: a round trip into a new place after which
every device still authenticates (token, MQTT password, certificate), the API key still
works, the product CA still signs, and the archive is the owner's alone."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import stat
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from lineside.bootstrap import bootstrap
from lineside.domain.models import CredentialType
from lineside.services.credentials import authenticate_device, issue_credential, product_ca_pem
from lineside.services.devices import define_device
from lineside.services.mqtt_access import authenticate_connection
from lineside.services.organizations import authenticate_api_key, create_organization
from lineside.services.products import create_product
from lineside.settings import Settings
from tests.conftest import postgres_admin_url
from tests.support.api import unique
from tests.support.webhooks import isolated_database


@dataclass(frozen=True)
class Installation:
    database_url: str
    data_dir: Path

    def environment(self) -> dict[str, str]:
        return {
            **os.environ,
            "LINESIDE_DATABASE_URL": self.database_url,
            "LINESIDE_DATA_DIR": str(self.data_dir),
        }

    def settings(self) -> Settings:
        return Settings(database_url=self.database_url, data_dir=self.data_dir, _env_file=None)

    def lineside(self, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "lineside", *args],
            env=self.environment(),
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


@contextmanager
def empty_database(like_url: str, scratch: Path) -> Iterator[str]:
    """A new database that nothing has touched: where a restore goes."""
    url = make_url(like_url)
    if url.get_backend_name() == "sqlite":
        yield f"sqlite:///{scratch / f'restored-{secrets.token_hex(4)}.db'}"
        return
    name = f"lineside_restore_{secrets.token_hex(4)}"
    admin = create_engine(postgres_admin_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


@dataclass(frozen=True)
class Fleet:
    api_key: str
    product_id: str
    token: tuple[str, str]  # device id, token
    mqtt_password: tuple[str, str]
    certificate: tuple[str, str]  # device id, certificate PEM
    ca_pem: str


def fleet_of(installation: Installation) -> Fleet:
    application = bootstrap(installation.settings())
    ctx = application.services
    created = create_organization(ctx, unique("backed-up"))
    admin = authenticate_api_key(ctx, created.admin_key.secret)
    product = create_product(ctx, admin, name=unique("product"), fields=[])

    def device_with(kind: CredentialType) -> tuple[str, str]:
        device = define_device(ctx, admin, product_id=product.id, serial_number=unique("SN"))
        issued = issue_credential(ctx, admin, device.id, kind)
        return device.id, issued.secret or issued.certificate_pem or ""

    fleet = Fleet(
        api_key=created.admin_key.secret,
        product_id=product.id,
        token=device_with(CredentialType.TOKEN),
        mqtt_password=device_with(CredentialType.MQTT_PASSWORD),
        certificate=device_with(CredentialType.X509),
        ca_pem=product_ca_pem(ctx, admin, product.id),
    )
    application.close()
    return fleet


def assert_every_device_authenticates(installation: Installation, fleet: Fleet) -> None:
    application = bootstrap(installation.settings())
    ctx = application.services
    token_device, token = fleet.token
    assert authenticate_device(ctx, token).id == token_device
    password_device, password = fleet.mqtt_password
    identity = authenticate_connection(
        ctx, client_id=password_device, username=password_device, password=password
    )
    assert identity.device_id == password_device
    certificate_device, pem = fleet.certificate
    fingerprint = hashlib.sha256(
        x509.load_pem_x509_certificate(pem.encode()).public_bytes(serialization.Encoding.DER)
    )
    identity = authenticate_connection(
        ctx,
        client_id=certificate_device,
        username=certificate_device,
        password=None,
        certificate_sha256=fingerprint.hexdigest(),
    )
    assert identity.device_id == certificate_device
    admin = authenticate_api_key(ctx, fleet.api_key)
    assert product_ca_pem(ctx, admin, fleet.product_id) == fleet.ca_pem  # the same CA, with its key
    device = define_device(ctx, admin, product_id=fleet.product_id, serial_number=unique("SN"))
    signed = issue_credential(ctx, admin, device.id, CredentialType.X509).certificate_pem or ""
    issuer = x509.load_pem_x509_certificate(fleet.ca_pem.encode())
    x509.load_pem_x509_certificate(signed.encode()).verify_directly_issued_by(issuer)
    application.close()


def test_a_backup_restored_elsewhere_authenticates_every_device(database_url: str, tmp_path: Path) -> None:
    with (
        isolated_database(database_url, tmp_path) as source_url,
        empty_database(database_url, tmp_path) as target_url,
    ):
        source = Installation(source_url, tmp_path / "data")
        fleet = fleet_of(source)
        archive = tmp_path / "lineside-backup.tar.gz"

        backed_up = source.lineside("backup", str(archive), cwd=tmp_path)
        target = Installation(target_url, tmp_path / "restored-data")
        restored = target.lineside("restore", str(archive), cwd=tmp_path)

        assert backed_up.returncode == 0, backed_up.stderr
        assert restored.returncode == 0, restored.stderr
        assert stat.S_IMODE(archive.stat().st_mode) == 0o600
        with tarfile.open(archive) as opened:
            names = opened.getnames()
            manifest = json.loads(opened.extractfile("backup.json").read())  # type: ignore[union-attr]
        assert "data/server.key" in names
        assert any(name.startswith("data/ca/") for name in names)
        assert manifest["backend"] == make_url(database_url).get_backend_name()
        assert stat.S_IMODE((target.data_dir / "server.key").stat().st_mode) == 0o600
        assert_every_device_authenticates(target, fleet)


def test_restore_refuses_to_replace_a_server_in_use_and_says_why_in_one_line(
    database_url: str, tmp_path: Path
) -> None:
    with isolated_database(database_url, tmp_path) as source_url:
        source = Installation(source_url, tmp_path / "data")
        fleet_of(source)
        archive = tmp_path / "backup.tar.gz"
        assert source.lineside("backup", str(archive), cwd=tmp_path).returncode == 0
        again = source.lineside("backup", str(archive), cwd=tmp_path)

        refused = source.lineside("restore", str(archive), cwd=tmp_path)

    assert again.returncode == 2 and "exists" in again.stderr
    assert refused.returncode == 1
    assert len(refused.stderr.strip().splitlines()) == 1
    assert "--force" in refused.stderr


def test_restore_says_so_when_the_file_is_not_a_backup(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not a backup")
    target = Installation(f"sqlite:///{tmp_path / 'x.db'}", tmp_path / "data")

    result = target.lineside("restore", str(junk), cwd=tmp_path)

    assert result.returncode == 1
    assert "cannot be read as a backup" in result.stderr
    assert "Traceback" not in result.stderr
