"""What a station's keys cannot do (issue 17, from a security review), on both databases: its
ledger and its CA reach only the devices the station made, its CA keeps to its budget, and a
signed entry whose data its line could not have written stops the sync at that entry (422),
never a 500."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from lineside.bootstrap import Application
from lineside.domain.errors import CertificateRefused
from lineside.domain.stations import entry_hash, genesis_hash
from lineside.services.registration import register_device
from tests.integration.test_stations import Line
from tests.support.api import Tenant, assert_problem, unique
from tests.support.pki import der
from tests.support.stations import StationSite, station_site, unit_certificate, wire


@pytest.fixture
def line(tenant: Tenant) -> Line:
    return Line(tenant)


def signed(site: StationSite, station_id: str, kind: str, data: dict[str, Any]) -> dict[str, Any]:
    """An entry the station's key signs after its newest one: what a thief of its bundle can make."""
    entries = site.entries()
    sequence = entries[-1].sequence + 1 if entries else 1
    previous = entries[-1].hash if entries else genesis_hash(station_id)
    at = datetime.now(UTC)
    digest = entry_hash(station_id, sequence, at, kind, data, previous)
    signature = site.application.services.station_keys.sign(site.post.signing_key_pem, digest)
    return {
        "sequence": sequence,
        "at": at.isoformat(),
        "kind": kind,
        "data": data,
        "previous_hash": previous,
        "hash": digest,
        "signature": signature,
    }


def test_a_signed_certificate_entry_cannot_attach_to_a_device_the_station_did_not_make(
    line: Line, tmp_path: Any, application: Application
) -> None:
    made = line.station()
    station_id = made["station"]["id"]
    victim = line.tenant.device(line.product["id"], unique("ONLINE"))
    certificate = unit_certificate(made["bundle"], unique("ANY"))
    facts = application.services.x509.read_device_certificate(der(certificate), ())
    data = {
        "device_id": victim["id"],
        "fingerprint_sha256": facts.fingerprint_sha256,
        "serial_hex": facts.serial_hex,
        "subject": facts.subject,
        "not_before": facts.not_before.isoformat(),
        "not_after": facts.not_after.isoformat(),
    }
    with station_site(made["bundle"], tmp_path / "station") as site:
        refused = assert_problem(
            line.upload(station_id, [signed(site, station_id, "certificate", data)]), 422
        )
    assert refused["stopped_at"] == 1 and "not one this station made" in refused["reason"]
    registered = register_device(application.services, der(certificate), via="test")
    assert registered.device.id != victim["id"]  # the certificate names its own unit, not the victim


def test_a_station_ca_certificate_cannot_take_over_a_device_of_the_fleet_by_its_serial(
    line: Line, application: Application
) -> None:
    made = line.station()
    serial = unique("ONLINE")
    victim = line.tenant.device(line.product["id"], serial)
    with pytest.raises(CertificateRefused, match="not made by the station"):
        register_device(application.services, der(unit_certificate(made["bundle"], serial)), via="test")
    assert line.tenant.get(f"/api/v1/devices/{victim['id']}/certificates").json() == []


def test_a_station_ca_registers_no_more_devices_than_its_budget(line: Line, application: Application) -> None:
    made = line.station(budget=2)
    for _ in range(2):
        register_device(application.services, der(unit_certificate(made["bundle"], unique("B"))), via="test")
    with pytest.raises(CertificateRefused, match="budget"):
        register_device(application.services, der(unit_certificate(made["bundle"], unique("B"))), via="test")
    assert line.shown(made["station"]["id"])["devices_made"] == 2


@pytest.mark.parametrize(
    ("kind", "data"),
    [
        ("enroll", {"device_id": "x", "serial_number": "S1"}),  # no hardware id
        ("test_run", {"device_id": "UNIT", "passed": True, "measurements": 5}),
        ("test_run", {"device_id": "UNIT", "passed": True, "measurements": "ab"}),
        ("test_run", {"device_id": "UNIT", "measurements": {}}),  # no result
        ("bless", {}),
        (
            "certificate",
            {
                "device_id": "UNIT",
                "fingerprint_sha256": "ab" * 32,
                "serial_hex": "1",
                "subject": "x",
                "not_before": "nope",
                "not_after": "x",
            },
        ),
    ],
)
def test_a_signed_entry_with_data_the_line_never_writes_stops_the_sync_there(
    line: Line, tmp_path: Any, kind: str, data: dict[str, Any]
) -> None:
    made = line.station()
    station_id = made["station"]["id"]
    with station_site(made["bundle"], tmp_path / "station") as site:
        unit = site.enroll()
        line.synced(station_id, site.entries())
        head = line.shown(station_id)["head_sequence"]
        filled = {key: unit if value == "UNIT" else value for key, value in data.items()}
        refused = assert_problem(line.upload(station_id, [signed(site, station_id, kind, filled)]), 422)
    assert refused["stopped_at"] == head + 1
    assert line.shown(station_id)["head_sequence"] == head


def test_a_revocation_as_of_an_earlier_time_refuses_what_the_key_dated_after_it(
    line: Line, tmp_path: Any
) -> None:
    made = line.station()
    station_id = made["station"]["id"]
    with station_site(made["bundle"], tmp_path / "station") as site:
        site.unit()
        trusted = line.synced(station_id, site.entries())["head_sequence"]
        as_of = datetime.now(UTC)
        site.unit()  # made after the last trusted moment: as a thief of the key would
        revoked = line.tenant.post(f"/api/v1/stations/{station_id}/revoke", json={"as_of": as_of.isoformat()})
        assert revoked.status_code == 200, revoked.text
        refused = assert_problem(line.upload(station_id, [wire(e) for e in site.entries()]), 422)
    assert refused["stopped_at"] == trusted + 1 and "revoked" in refused["reason"]
    later = line.tenant.post(f"/api/v1/stations/{station_id}/revoke", json={"as_of": "2999-01-01T00:00:00Z"})
    assert_problem(later, 422)
    naive = line.tenant.post(f"/api/v1/stations/{station_id}/revoke", json={"as_of": "2026-01-01T00:00:00"})
    assert_problem(naive, 422)
