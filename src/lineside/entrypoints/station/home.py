"""Where a station keeps its state: a private data directory beside its bundle, holding its
SQLite database (the line's rows and the ledger), its own server key (the hashes of the
line's secrets are local) and its CA, which the bootstrapped certificate authority signs with.

    <bundle>.station/          0700
      station.db               the line and the ledger
      server.key               the station's own HMAC key
      ca/<product_id>/         ca.key.pem (0600), ca.cert.pem: the station's CA from the bundle
      warned                   the limits already warned about (one warning each)
"""

from __future__ import annotations

import os
from pathlib import Path

from lineside.bootstrap import Application, bootstrap
from lineside.entrypoints.station.bundle import StationBundle
from lineside.services.station_local import seed_station
from lineside.settings import Settings

DATABASE_FILE = "station.db"


def data_dir_of(bundle: StationBundle, data_dir: Path | None) -> Path:
    return data_dir if data_dir is not None else bundle.default_data_dir()


def open_station(bundle: StationBundle, data_dir: Path, *, seed: bool = True) -> Application:
    """The station's application on its own database, migrated and (first time) seeded."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)
    if seed:
        _install_authority(bundle, data_dir / "ca" / bundle.product_id)
    settings = Settings(
        database_url=f"sqlite:///{data_dir / DATABASE_FILE}",
        data_dir=data_dir,
        mqtt_enabled=False,
        public_url=bundle.server_url,
        _env_file=None,
    )
    application = bootstrap(settings, migrate=True)
    if seed:
        seed_station(application.services, bundle.seed, bundle.station_id)
    return application


def _install_authority(bundle: StationBundle, directory: Path) -> None:
    """The bundle's CA where FileCertificateAuthority looks for the product's CA; written
    once (its key first and private), so a restart never swaps the CA under the line."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    _write_once(directory / "ca.key.pem", bundle.ca_key_pem, 0o600)
    _write_once(directory / "ca.cert.pem", bundle.ca_certificate_pem, 0o644)


def _write_once(path: Path, text: str, mode: int) -> None:
    if path.exists():
        return
    staging = path.with_name(f".{path.name}.partial")
    descriptor = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(staging, path)
