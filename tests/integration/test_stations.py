"""Offline factory stations (issue 17), the server's side, on both databases: an admin
delegates a product's line to a station and gets its bundle once; the station's ledger (made
here by services.station_line on a database of its own, as a real station makes it) is
replayed as the line's own actions, exactly once, resumably; the first entry the server cannot
believe (altered, reordered, forged, replayed, outside the window, after revocation, past the
budget) stops the sync there with a 422 that says which and why, and nothing after it lands.
Units signed by the station's CA register themselves before the sync; revocation closes it.
An upload that overtook the one before it changes nothing (409). The station's own sync, two
chunks in flight over a real socket, lands every chunk once and in order."""

from __future__ import annotations

import base64
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlalchemy import event, func, select, update

from lineside.adapters.db import tables as t
from lineside.bootstrap import Application
from lineside.domain.errors import CertificateRefused
from lineside.domain.factory_pki import registered_device_id
from lineside.domain.stations import LedgerEntry, entry_hash
from lineside.entrypoints.station import sync as station_sync
from lineside.entrypoints.station.sync import StationLink, SyncStopped, sync_ledger
from lineside.services.quotas import set_device_quota
from lineside.services.registration import register_device
from lineside.services.station_local import mark_synced
from tests.integration.test_device_counts import agree
from tests.integration.test_device_counts import states as states_counted
from tests.support.api import Tenant, assert_problem, ok, unique
from tests.support.factory import factory_token, keyed
from tests.support.people import new_person
from tests.support.pki import der
from tests.support.stations import StationSite, station_site, unit_certificate, wire

API = "/api/v1"


class Line:
    """A tenant's product, its factory token and its fixtures' key: what a station serves."""

    def __init__(self, tenant: Tenant) -> None:
        self.tenant = tenant
        self.product = tenant.product()
        self.token = factory_token(tenant, self.product["id"])
        self.fixtures = keyed(tenant, "factory")

    def body(self, **changes: Any) -> dict[str, Any]:
        return {
            "name": unique("station"),
            "budget": 100,
            "valid_days": 14,
            "enrollment_token": self.token,
            "fixture_api_key": self.fixtures.api_key,
            **changes,
        }

    def create(self, **changes: Any) -> httpx.Response:
        return self.tenant.post(f"{API}/products/{self.product['id']}/stations", json=self.body(**changes))

    def station(self, **changes: Any) -> dict[str, Any]:
        response = self.create(**changes)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    def upload(self, station_id: str, entries: list[LedgerEntry] | list[dict[str, Any]]) -> httpx.Response:
        body = [wire(e) if isinstance(e, LedgerEntry) else e for e in entries]
        return self.fixtures.post(f"{API}/stations/{station_id}/ledger", json={"entries": body})

    def synced(self, station_id: str, entries: list[LedgerEntry]) -> dict[str, Any]:
        answer: dict[str, Any] = ok(self.upload(station_id, entries))
        return answer

    def stopped(self, station_id: str, entries: list[LedgerEntry] | list[dict[str, Any]]) -> dict[str, Any]:
        return assert_problem(self.upload(station_id, entries), 422)

    def shown(self, station_id: str) -> dict[str, Any]:
        answer: dict[str, Any] = ok(self.tenant.get(f"{API}/stations/{station_id}"))
        return answer

    def device(self, device_id: str) -> httpx.Response:
        return self.tenant.get(f"{API}/devices/{device_id}")

    def devices(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = ok(
            self.tenant.get(f"{API}/devices", params={"product_id": self.product["id"], "limit": 100})
        )["items"]
        return items

    def events(self, event_type: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = ok(
            self.tenant.get(f"{API}/audit-events", params={"type": event_type, "limit": 100})
        )["items"]
        return items


@pytest.fixture
def line(tenant: Tenant) -> Line:
    return Line(tenant)


@pytest.fixture
def made(line: Line) -> dict[str, Any]:
    return line.station()


@pytest.fixture
def site(made: dict[str, Any], tmp_path: Path) -> Iterator[StationSite]:
    with station_site(made["bundle"], tmp_path / "station") as station:
        yield station


def test_an_admin_creates_a_station_and_gets_its_bundle_once(line: Line) -> None:
    made = line.station(budget=50_000, valid_days=14)
    station, bundle = made["station"], made["bundle"]
    assert (station["budget"], station["head_sequence"], station["devices_made"]) == (50_000, 0, 0)
    assert station["product_id"] == line.product["id"] and station["revoked_at"] is None
    window = datetime.fromisoformat(station["not_after"]) - datetime.fromisoformat(station["not_before"])
    assert window == timedelta(days=14)
    assert bundle["format"] == "lineside-station/1"
    assert bundle["station"]["id"] == station["id"] and bundle["product"]["id"] == line.product["id"]
    assert bundle["secrets"]["enrollment_token"] == line.token
    assert bundle["secrets"]["fixture_api_key"] == line.fixtures.api_key
    assert "PRIVATE KEY" in bundle["secrets"]["signing_key_pem"]
    assert "PRIVATE KEY" in bundle["secrets"]["ca_key_pem"]
    assert bundle["certificate_authority_pem"].startswith("-----BEGIN CERTIFICATE-----")
    shown = line.shown(station["id"])
    assert "bundle" not in shown and "signing_key_pem" not in str(shown)  # shown once
    authority = ok(line.tenant.get(f"{API}/certificate-authorities/{station['authority_id']}"))
    assert authority["status"] == "verified"
    assert [e["subject_id"] for e in line.events("station.created")] == [station["id"]]
    listed = ok(line.tenant.get(f"{API}/stations", params={"product_id": line.product["id"]}))
    assert [s["id"] for s in listed] == [station["id"]]


@pytest.mark.parametrize(
    ("changes", "status"),
    [
        ({"budget": 0}, 422),
        ({"budget": 1_000_001}, 422),
        ({"valid_days": 91}, 422),
        ({"valid_days": 0}, 422),
        ({"name": " "}, 422),
        ({"enrollment_token": "lsf_not-a-token"}, 422),
        ({"fixture_api_key": "lsk_not-a-key"}, 422),
    ],
)
def test_a_station_outside_the_limits_is_refused(line: Line, changes: dict[str, Any], status: int) -> None:
    assert_problem(line.create(**changes), status)
    assert ok(line.tenant.get(f"{API}/stations")) == []


def test_a_station_serves_only_a_live_token_of_its_product_and_a_factory_key_of_its_organization(
    line: Line, make_tenant: Any
) -> None:
    other_product = line.tenant.product()
    assert_problem(line.create(enrollment_token=factory_token(line.tenant, other_product["id"])), 422)
    revoked = line.tenant.created(f"{API}/factory/enrollment-tokens", {"product_id": line.product["id"]})
    assert ok(line.tenant.post(f"{API}/factory/enrollment-tokens/{revoked['id']}/revoke", json={}))
    assert_problem(line.create(enrollment_token=revoked["token"]), 422)
    stranger = make_tenant()
    assert_problem(line.create(fixture_api_key=keyed(stranger, "factory").api_key), 422)
    assert_problem(line.create(fixture_api_key=keyed(line.tenant, "read").api_key), 422)
    admin_key = assert_problem(line.create(fixture_api_key=line.tenant.api_key), 422)
    assert "admin key" in admin_key["detail"]  # the bundle goes to the factory: no admin key in it
    assert ok(line.tenant.get(f"{API}/stations")) == []


def test_a_sign_in_token_is_not_a_fixture_key(line: Line, client: httpx.Client) -> None:
    person = new_person(client)
    problem = assert_problem(line.create(fixture_api_key=person.token), 422)
    assert "not a sign-in token" in problem["detail"]


def test_a_product_of_predefined_devices_gets_no_station(line: Line) -> None:
    product = line.tenant.created(
        f"{API}/products", {"name": unique("product"), "enrollment_policy": "predefined"}
    )
    token = factory_token(line.tenant, product["id"])
    response = line.tenant.post(
        f"{API}/products/{product['id']}/stations", json=line.body(enrollment_token=token)
    )
    assert_problem(response, 409)


def test_only_an_admin_creates_or_revokes_a_station(line: Line, made: dict[str, Any]) -> None:
    for scope in ("read", "factory"):
        caller = keyed(line.tenant, scope)
        response = caller.post(f"{API}/products/{line.product['id']}/stations", json=line.body())
        assert_problem(response, 403)
        assert_problem(caller.post(f"{API}/stations/{made['station']['id']}/revoke", json={}), 403)
    reader = keyed(line.tenant, "read")
    assert ok(reader.get(f"{API}/stations/{made['station']['id']}"))["id"] == made["station"]["id"]
    assert_problem(reader.post(f"{API}/stations/{made['station']['id']}/ledger", json={"entries": []}), 403)


def test_another_organization_never_sees_a_station(
    line: Line, made: dict[str, Any], site: StationSite, make_tenant: Any
) -> None:
    site.unit()
    stranger = Line(make_tenant())
    station_id = made["station"]["id"]
    assert_problem(stranger.tenant.get(f"{API}/stations/{station_id}"), 404)
    assert_problem(stranger.tenant.post(f"{API}/stations/{station_id}/revoke", json={}), 404)
    assert_problem(stranger.upload(station_id, site.entries()), 404)
    assert ok(stranger.tenant.get(f"{API}/stations")) == []
    assert line.shown(station_id)["head_sequence"] == 0 and line.shown(station_id)["revoked_at"] is None


def test_a_sync_replays_the_line_once_as_the_station_did_it(
    line: Line, made: dict[str, Any], site: StationSite
) -> None:
    blessed, failed = site.unit(passed=True), site.unit(passed=False, serial=unique("SN"))
    entries = site.entries()
    assert [e.kind.value for e in entries] == ["enroll", "test_run", "bless"] * 2
    station_id = made["station"]["id"]

    answer = line.synced(station_id, entries)
    assert (answer["applied"], answer["head_sequence"], answer["head_hash"]) == (6, 6, entries[-1].hash)

    assert line.device(blessed).json()["state"] == "blessed"
    assert line.device(failed).json()["state"] == "failed"
    assert sorted(d["id"] for d in line.devices()) == sorted([blessed, failed])
    runs = ok(line.tenant.get(f"{API}/devices/{blessed}/test-runs"))
    recorded = next(e for e in entries if e.kind.value == "test_run" and e.data["device_id"] == blessed)
    assert [(r["id"], r["passed"]) for r in runs] == [(recorded.data["run_id"], True)]
    assert datetime.fromisoformat(runs[0]["created_at"]) == recorded.at
    actor = f"station:{station_id}"
    defined = [e for e in line.events("device.defined") if e["subject_id"] in (blessed, failed)]
    assert len(defined) == 2 and {e["actor"] for e in defined} == {actor}
    blessings = line.events("device.blessed")
    assert [(e["subject_id"], e["actor"]) for e in blessings] == [(blessed, actor)]
    assert datetime.fromisoformat(blessings[0]["occurred_at"]) == entries[2].at
    shown = line.shown(station_id)
    assert (shown["head_sequence"], shown["devices_made"]) == (6, 2)
    assert shown["last_sync_at"] is not None
    assert [e["data"]["applied"] for e in line.events("station.synced")] == [6]

    again = line.synced(station_id, entries)  # the same upload: nothing new
    assert (again["applied"], again["head_sequence"]) == (0, 6)
    assert len(line.devices()) == 2
    assert len(ok(line.tenant.get(f"{API}/devices/{blessed}/test-runs"))) == 1
    assert len(line.events("device.blessed")) == 1
    assert line.shown(station_id)["devices_made"] == 2


def test_a_sync_resumes_where_it_stopped(line: Line, made: dict[str, Any], site: StationSite) -> None:
    units = [site.unit() for _ in range(3)]
    entries = site.entries()
    station_id = made["station"]["id"]
    assert line.synced(station_id, entries[:4])["head_sequence"] == 4
    assert line.device(units[0]).json()["state"] == "blessed"
    assert line.device(units[1]).json()["state"] == "under_test"
    assert line.synced(station_id, entries[2:])["applied"] == 5  # overlapping: the head decides
    assert [line.device(u).json()["state"] for u in units] == ["blessed"] * 3
    assert line.shown(station_id)["devices_made"] == 3


def _stops_at(
    line: Line, station_id: str, entries: list[LedgerEntry] | list[dict[str, Any]], sequence: int, why: str
) -> dict[str, Any]:
    problem = line.stopped(station_id, entries)
    assert problem["stopped_at"] == sequence, problem
    assert why in problem["reason"], problem
    assert problem["head_sequence"] == sequence - 1
    stopped = line.events("station.sync_stopped")
    assert stopped[0]["data"]["sequence"] == sequence and why in stopped[0]["data"]["reason"]
    return problem


def test_an_altered_entry_stops_the_sync_there(line: Line, made: dict[str, Any], site: StationSite) -> None:
    first, second = site.unit(), site.unit()
    entries = [wire(e) for e in site.entries()]
    entries[3]["data"]["hardware_id"] = "02:00:00:00:00:01"  # the second unit's enrollment
    _stops_at(line, made["station"]["id"], entries, 4, "do not match its hash")
    assert line.device(first).json()["state"] == "blessed"
    assert_problem(line.device(second), 404)


def test_reordered_entries_stop_the_sync(line: Line, made: dict[str, Any], site: StationSite) -> None:
    site.unit()
    entries = site.entries()
    problem = line.stopped(made["station"]["id"], [entries[0], entries[2], entries[1]])
    assert (problem["stopped_at"], problem["head_sequence"], problem["applied"]) == (3, 1, 1)
    assert "reordered" in problem["reason"]
    assert line.shown(made["station"]["id"])["head_sequence"] == 1
    assert [e["data"]["sequence"] for e in line.events("station.sync_stopped")] == [3]


def test_an_entry_signed_by_another_key_is_forged(
    line: Line, made: dict[str, Any], site: StationSite
) -> None:
    first, second = site.unit(), site.unit()
    entries = [wire(e) for e in site.entries()]
    forger = ed25519.Ed25519PrivateKey.generate()
    entries[3]["signature"] = base64.b64encode(forger.sign(bytes.fromhex(entries[3]["hash"]))).decode()
    _stops_at(line, made["station"]["id"], entries, 4, "forged")
    assert line.device(first).json()["state"] == "blessed"
    assert_problem(line.device(second), 404)


def test_a_replayed_entry_under_a_later_number_stops_the_sync(
    line: Line, made: dict[str, Any], site: StationSite
) -> None:
    site.unit()
    entries = site.entries()
    station_id = made["station"]["id"]
    line.synced(station_id, entries)
    # The first enrollment, re-sent as entry 4: chained and signed with the station's key, as
    # only a station (or a thief of its key) could; still the same action as entry 1.
    replayed = _resigned(site, entries[0], sequence=4, previous=entries[-1].hash)
    _stops_at(line, station_id, [replayed], 4, "replayed")
    # An earlier entry re-sent unchanged under a later number breaks the chain.
    copied = {**wire(entries[1]), "sequence": 4}
    assert line.stopped(station_id, [copied])["stopped_at"] == 4
    assert len(line.devices()) == 1 and line.shown(station_id)["devices_made"] == 1


def test_a_replayed_test_run_stops_the_sync(line: Line, made: dict[str, Any], site: StationSite) -> None:
    failed = site.unit(passed=False)
    entries = site.entries()
    station_id = made["station"]["id"]
    line.synced(station_id, entries)
    replayed = _resigned(site, entries[1], sequence=4, previous=entries[-1].hash)
    _stops_at(line, station_id, [replayed], 4, "replayed")
    assert len(ok(line.tenant.get(f"{API}/devices/{failed}/test-runs"))) == 1


def _resigned(site: StationSite, entry: LedgerEntry, *, sequence: int, previous: str) -> dict[str, Any]:
    digest = entry_hash(site.post.station_id, sequence, entry.at, entry.kind.value, entry.data, previous)
    signature = site.application.services.station_keys.sign(site.post.signing_key_pem, digest)
    return wire(replace(entry, sequence=sequence, previous_hash=previous, hash=digest, signature=signature))


def test_entries_outside_the_window_stop_the_sync(
    line: Line, made: dict[str, Any], site: StationSite
) -> None:
    site.unit()
    # A station whose clock ran an hour behind its window's opening (its own check bent too).
    early = datetime.now(UTC) - timedelta(hours=1)
    site.post = replace(site.post, not_before=early - timedelta(days=1))
    site.clock = lambda: early
    site.unit()
    _stops_at(line, made["station"]["id"], site.entries(), 4, "before the station's window opened")


def test_entries_after_the_window_closed_stop_the_sync(line: Line, tmp_path: Path) -> None:
    made = line.station(valid_days=0.01)  # about a quarter of an hour
    with station_site(made["bundle"], tmp_path / "station") as site:
        site.unit()
        late = datetime.fromisoformat(made["station"]["not_after"]) + timedelta(seconds=1)
        site.post = replace(site.post, not_after=late + timedelta(days=1))
        site.clock = lambda: late
        site.unit()
        _stops_at(line, made["station"]["id"], site.entries(), 4, "after the station's window closed")


def test_a_naive_timestamp_is_refused_not_a_crash(
    line: Line, made: dict[str, Any], site: StationSite
) -> None:
    site.unit()
    entry = wire(site.entries()[0])
    entry["at"] = entry["at"].removesuffix("+00:00")
    response = line.upload(made["station"]["id"], [entry])
    assert response.status_code in (400, 422), response.text
    assert line.shown(made["station"]["id"])["head_sequence"] == 0


def test_a_revoked_station_syncs_only_what_it_did_before(
    line: Line, made: dict[str, Any], site: StationSite
) -> None:
    before = site.unit()
    station_id = made["station"]["id"]
    revoked = ok(line.tenant.post(f"{API}/stations/{station_id}/revoke", json={}))
    assert revoked["revoked_at"] is not None
    again = ok(line.tenant.post(f"{API}/stations/{station_id}/revoke", json={}))
    assert again["revoked_at"] == revoked["revoked_at"]  # revoking twice changes nothing
    after = site.unit()
    _stops_at(line, station_id, site.entries(), 4, "after the station was revoked")
    assert line.device(before).json()["state"] == "blessed"
    assert_problem(line.device(after), 404)
    assert [e["subject_id"] for e in line.events("station.revoked")] == [station_id]


def test_a_ledger_past_the_budget_stops_at_the_unit_too_many(line: Line, tmp_path: Path) -> None:
    made = line.station(budget=2)
    with station_site(made["bundle"], tmp_path / "station") as site:
        site.post = replace(site.post, budget=3)  # a station that ignored its own budget
        units = [site.unit() for _ in range(3)]
        _stops_at(line, made["station"]["id"], site.entries(), 7, "budget of 2 devices is spent")
    assert [line.device(u).status_code for u in units] == [200, 200, 404]
    assert line.shown(made["station"]["id"])["devices_made"] == 2


def test_the_station_warns_once_at_80_percent_of_its_budget(line: Line, tmp_path: Path) -> None:
    made = line.station(budget=5)
    station_id = made["station"]["id"]
    with station_site(made["bundle"], tmp_path / "station") as site:
        for _ in range(3):
            site.unit()
        line.synced(station_id, site.entries())
        assert line.events("station.limit_near") == []  # 3 of 5: 60%
        site.unit()
        line.synced(station_id, site.entries())
        (warning,) = line.events("station.limit_near")
        assert (warning["data"]["limit"], warning["data"]["devices_made"]) == ("budget", 4)
        site.unit()
        line.synced(station_id, site.entries())
    assert len(line.events("station.limit_near")) == 1


def test_a_unit_signed_by_the_station_registers_before_the_sync_and_merges_with_it(
    line: Line, made: dict[str, Any], site: StationSite, application: Application
) -> None:
    serial = unique("SN")
    device_id = site.unit(serial=serial)
    assert device_id == registered_device_id(line.product["id"], serial)
    certificate = unit_certificate(made["bundle"], serial)
    site.record_certificate(device_id, certificate)

    registered = register_device(application.services, der(certificate), via="test")
    assert (registered.device.id, registered.created) == (device_id, True)
    assert line.device(device_id).json()["state"] == "defined"

    answer = line.synced(made["station"]["id"], site.entries())
    assert answer["applied"] == 4
    assert [d["id"] for d in line.devices()] == [device_id]
    assert line.device(device_id).json()["state"] == "blessed"
    certificates = ok(line.tenant.get(f"{API}/devices/{device_id}/certificates"))
    assert len(certificates["items"] if isinstance(certificates, dict) else certificates) == 1
    assert line.shown(made["station"]["id"])["devices_made"] == 1

    ok(line.tenant.post(f"{API}/stations/{made['station']['id']}/revoke", json={}))
    late = unit_certificate(made["bundle"], unique("SN"))
    with pytest.raises(CertificateRefused, match="revoked"):
        register_device(application.services, der(late), via="test")
    still = register_device(application.services, der(certificate), via="test")
    assert (still.device.id, still.created) == (device_id, False)


def test_a_unit_synced_before_it_connects_registers_as_the_same_device(
    line: Line, made: dict[str, Any], site: StationSite, application: Application
) -> None:
    serial = unique("SN")
    device_id = site.unit(serial=serial)
    certificate = unit_certificate(made["bundle"], serial)
    site.record_certificate(device_id, certificate)
    line.synced(made["station"]["id"], site.entries())
    registered = register_device(application.services, der(certificate), via="test")
    assert (registered.device.id, registered.created) == (device_id, False)
    assert [d["id"] for d in line.devices()] == [device_id]


def test_a_sync_reads_test_runs_in_statements_that_do_not_grow_with_its_units(
    line: Line, tmp_path: Path, application: Application
) -> None:
    """The chunk reads the test runs it needs at once: a unit it enrolls has none stored, so
    its test run and blessing ask the database nothing more (they did, once per unit)."""
    reads: list[str] = []

    def counted(_connection: object, _cursor: object, statement: str, *_: object) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "test_runs" in statement:
            reads.append(statement)

    per_upload = []
    for units in (1, 6):
        made = line.station()
        with station_site(made["bundle"], tmp_path / f"station-{units}") as site:
            for _ in range(units):
                site.unit()
            entries = site.entries()
        reads.clear()
        event.listen(application.engine, "before_cursor_execute", counted)
        try:
            assert line.synced(made["station"]["id"], entries)["applied"] == 3 * units
        finally:
            event.remove(application.engine, "before_cursor_execute", counted)
        per_upload.append(len(reads))
    assert per_upload[0] == per_upload[1], per_upload


def test_a_forged_entry_deep_in_a_large_upload_stops_it_there_and_the_rest_syncs_after(
    application: Application, line: Line, made: dict[str, Any], site: StationSite
) -> None:
    # 90 entries: enough that the server checks their signatures in threads, over slices.
    units = [site.unit(passed=n % 5 != 0) for n in range(30)]
    genuine = site.entries()
    entries = [wire(e) for e in genuine]
    forger = ed25519.Ed25519PrivateKey.generate()
    entries[70]["signature"] = base64.b64encode(forger.sign(bytes.fromhex(entries[70]["hash"]))).decode()
    station_id = made["station"]["id"]

    assert _stops_at(line, station_id, entries, 71, "forged")["applied"] == 70
    assert [line.device(u).json()["state"] for u in units[:2]] == ["failed", "blessed"]
    assert line.device(units[23]).json()["state"] == "under_test"  # entry 70 enrolled it; 71 is its run
    assert_problem(line.device(units[24]), 404)

    assert line.synced(station_id, genuine)["applied"] == 20
    states = Counter(d["state"] for d in line.devices())
    assert states == Counter({"blessed": 24, "failed": 6})
    # A unit made in the chunk is inserted as it ended, one read from the server moves once:
    # the device counters still agree with the devices.
    assert states_counted(agree(application, line.tenant)) == states


def test_an_upload_that_starts_past_the_entry_after_the_head_changes_nothing_and_says_what_to_send(
    line: Line, made: dict[str, Any], site: StationSite
) -> None:
    first, second = site.unit(), site.unit()
    entries = site.entries()
    station_id = made["station"]["id"]
    for early in (entries[3:], [entries[1], entries[0]]):
        problem = assert_problem(line.upload(station_id, early), 409)
        assert (problem["expected_sequence"], problem["head_sequence"]) == (1, 0), problem
        assert "upload from entry 1 first" in problem["detail"]
    assert line.shown(station_id)["head_sequence"] == 0
    assert line.devices() == [] and line.events("station.sync_stopped") == []

    assert line.synced(station_id, entries[:3])["head_sequence"] == 3
    assert line.synced(station_id, entries[3:])["applied"] == 3
    assert [line.device(u).json()["state"] for u in (first, second)] == ["blessed", "blessed"]


# -- the station's own sync (entrypoints.station.sync) over the real socket -----------------
# Two chunks in flight: every entry lands once and in order, a forged entry in a later chunk
# stops the sync there with the chunk behind it changing nothing, and a server whose head is
# behind the station's marks is sent what it lacks. Chunks of 4, so a few dozen entries are
# many chunks.

CHUNK = 4


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(station_sync, "CHUNK", CHUNK)


def link(client: httpx.Client, made: dict[str, Any]) -> StationLink:
    return StationLink(
        str(client.base_url), made["station"]["id"], made["bundle"]["secrets"]["fixture_api_key"]
    )


def local_marks(site: StationSite) -> int:
    """The highest sequence the station has marked synced (0: none)."""
    c = t.station_ledger.c
    with site.application.engine.connect() as connection:
        return int(
            connection.execute(select(func.max(c.sequence)).where(c.synced_at.is_not(None))).scalar() or 0
        )


def test_the_stations_sync_lands_every_chunk_once_and_in_order(
    client: httpx.Client, line: Line, made: dict[str, Any], site: StationSite, small_chunks: None
) -> None:
    units = [site.unit(passed=n % 4 != 0) for n in range(10)]  # 30 entries: 8 chunks
    uploaded: list[int] = []

    outcome = sync_ledger(site.ctx, link(client, made), uploaded.append)

    assert (outcome.server_head, outcome.uploaded, outcome.head_sequence) == (0, 30, 30)
    assert uploaded == [CHUNK] * 7 + [2]
    assert local_marks(site) == 30
    synced = sorted(line.events("station.synced"), key=lambda e: e["data"]["from_sequence"])
    assert [(e["data"]["from_sequence"], e["data"]["through_sequence"]) for e in synced] == [
        (start, min(start + CHUNK - 1, 30)) for start in range(1, 31, CHUNK)
    ]
    states = [line.device(u).json()["state"] for u in units]
    assert states == ["failed" if n % 4 == 0 else "blessed" for n in range(10)]
    assert sync_ledger(site.ctx, link(client, made)).uploaded == 0


def test_a_forged_entry_in_a_later_chunk_stops_there_and_the_chunk_behind_it_changes_nothing(
    client: httpx.Client, line: Line, made: dict[str, Any], site: StationSite, small_chunks: None
) -> None:
    units = [site.unit() for _ in range(10)]
    forger = ed25519.Ed25519PrivateKey.generate()
    forged = site.entries()[17]  # entry 18, the fifth chunk's second: the sixth is in flight
    with site.application.engine.begin() as connection:
        connection.execute(
            update(t.station_ledger)
            .where(t.station_ledger.c.sequence == forged.sequence)
            .values(signature=base64.b64encode(forger.sign(bytes.fromhex(forged.hash))).decode())
        )

    with pytest.raises(SyncStopped) as stopped:
        sync_ledger(site.ctx, link(client, made))

    assert (stopped.value.stopped_at, stopped.value.head_sequence) == (18, 17)
    assert "forged" in stopped.value.reason
    assert local_marks(site) == 17
    assert line.shown(made["station"]["id"])["head_sequence"] == 17
    assert [e["data"]["sequence"] for e in line.events("station.sync_stopped")] == [18]
    assert line.device(units[5]).json()["state"] == "under_test"  # entry 16 enrolled it, 17 tested it
    assert len(line.devices()) == 6


def test_a_server_behind_the_stations_marks_is_sent_what_it_lacks(
    client: httpx.Client, line: Line, made: dict[str, Any], site: StationSite, small_chunks: None
) -> None:
    units = [site.unit() for _ in range(6)]
    assert line.synced(made["station"]["id"], site.entries()[:6])["head_sequence"] == 6
    mark_synced(site.ctx, 15)  # as if the server were restored from a backup taken at entry 6

    outcome = sync_ledger(site.ctx, link(client, made))

    assert (outcome.server_head, outcome.uploaded, outcome.head_sequence) == (6, 12, 18)
    assert [line.device(u).json()["state"] for u in units] == ["blessed"] * 6


def test_a_chunk_that_overtakes_the_one_before_it_is_sent_again_once_that_one_landed(
    client: httpx.Client,
    line: Line,
    made: dict[str, Any],
    site: StationSite,
    small_chunks: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    units = [site.unit() for _ in range(3)]  # 9 entries: chunks from 1, 5 and 9
    overtaken = threading.Event()
    answers: list[tuple[int, int]] = []
    post = station_sync._post

    def second_chunk_first(
        http: httpx.Client, link: StationLink, entries: list[LedgerEntry]
    ) -> httpx.Response:
        if entries[0].sequence == 1:
            assert overtaken.wait(timeout=30), "the second chunk was never sent"
        response = post(http, link, entries)
        answers.append((entries[0].sequence, response.status_code))
        if entries[0].sequence == 5:
            overtaken.set()
        return response

    monkeypatch.setattr(station_sync, "_post", second_chunk_first)
    outcome = sync_ledger(site.ctx, link(client, made))

    assert answers[:2] == [(5, 409), (1, 200)]
    assert (5, 200) in answers and (9, 200) in answers
    assert (outcome.uploaded, outcome.head_sequence) == (9, 9)
    assert [line.device(u).json()["state"] for u in units] == ["blessed"] * 3
    assert line.events("station.sync_stopped") == []


def test_the_organizations_quota_stops_the_sync_at_the_unit_past_it(
    application: Application, line: Line, made: dict[str, Any], site: StationSite
) -> None:
    units = [site.unit() for _ in range(4)]
    set_device_quota(application.services, line.tenant.organization_id, 2)
    # The quota counts the units the upload makes before it: the third enrollment is entry 7.
    problem = _stops_at(line, made["station"]["id"], site.entries(), 7, "quota")
    assert problem["applied"] == 6
    assert [line.device(u).json()["state"] for u in units[:2]] == ["blessed"] * 2
    assert_problem(line.device(units[2]), 404)
