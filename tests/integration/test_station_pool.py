"""Offline stations' token pools (issue 17), on both databases: a station created with
``token_pool`` gets a device id and token per unit of its budget (the server keeps only their
keyed hashes); its line gives new units those ids in order and hands each its token; a unit
with a pool token authenticates at the server before the station syncs (defined then, under
its pool id), and the sync names it and replays its line once. A revoked station's unused pool
authenticates nothing; pools never cross organizations."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from lineside.adapters.db import tables as t
from lineside.bootstrap import Application
from lineside.domain.errors import StationLimitReached
from lineside.services import station_line
from lineside.services.registration import register_device
from tests.integration.test_stations import API, Line
from tests.support.api import Tenant, assert_problem, ok, unique
from tests.support.mqtt import NOT_AUTHORIZED, embedded_broker, mqtt_client, wait_for
from tests.support.pki import der
from tests.support.stations import StationSite, pool_of, station_site, unit_certificate

ME = "/device/v1/me"


def me(client: httpx.Client, token: str) -> httpx.Response:
    return client.get(ME, headers={"Authorization": f"Bearer {token}"})


@pytest.fixture
def line(tenant: Tenant) -> Line:
    return Line(tenant)


@pytest.fixture
def made(line: Line) -> dict[str, Any]:
    return line.station(budget=5, token_pool=True)


@pytest.fixture
def site(made: dict[str, Any], tmp_path: Path) -> Iterator[StationSite]:
    with station_site(made["bundle"], tmp_path / "station") as station:
        yield station


def _pool_rows(application: Application, station_id: str) -> list[Any]:
    c = t.station_pool.c
    with application.engine.connect() as connection:
        return list(
            connection.execute(select(t.station_pool).where(c.station_id == station_id).order_by(c.position))
        )


def test_a_pool_station_gets_one_id_and_token_per_unit_and_the_server_keeps_only_hashes(
    line: Line, application: Application
) -> None:
    made = line.station(budget=40, token_pool=True)
    station, pool = made["station"], pool_of(made["bundle"])
    assert station["pool_size"] == 40 and line.shown(station["id"])["pool_size"] == 40
    ids, tokens = [d for d, _ in pool], [tok for _, tok in pool]
    assert len(pool) == 40 and len(set(ids)) == 40 and len(set(tokens)) == 40
    assert all(tok.startswith("lsd_") for tok in tokens)
    rows = _pool_rows(application, station["id"])
    assert [str(r.device_id) for r in rows] == ids and [r.position for r in rows] == list(range(40))
    assert all(r.opened_at is None for r in rows)
    stored = {r.token_hash for r in rows}
    assert len(stored) == 40 and not stored & set(tokens)
    assert all(tok.removeprefix("lsd_") not in h for h in stored for tok in tokens)
    assert stored == {application.services.hasher.hash(tok) for tok in tokens}
    assert ok(line.tenant.get(f"{API}/stations/{station['id']}")).get("pool") is None
    # No pool unless asked: the bundle holds none and the table nothing.
    plain = line.station()
    assert plain["station"]["pool_size"] == 0 and pool_of(plain["bundle"]) == []
    assert _pool_rows(application, plain["station"]["id"]) == []


@pytest.mark.parametrize("changes", [{"budget": 100_001, "token_pool": True}, {"token_pool": "yes"}])
def test_a_pool_past_its_limit_or_not_a_boolean_is_refused(line: Line, changes: dict[str, Any]) -> None:
    assert_problem(line.create(**changes), 422)
    assert ok(line.tenant.get(f"{API}/stations")) == []


def test_the_line_gives_new_units_the_pool_ids_in_order_and_the_same_token_again(
    made: dict[str, Any], site: StationSite
) -> None:
    pool = pool_of(made["bundle"])
    first_hardware = "02:00:00:00:aa:01"
    units = [site.enroll(hardware=first_hardware), site.enroll(), site.enroll()]
    assert units == [device_id for device_id, _ in pool[:3]]
    assert site.enroll(hardware=first_hardware) == units[0]  # the same unit again: no new id
    assert site.enroll() == pool[3][0]
    assert site.pool_token(units[1]) == pool[1][1]
    assert site.pool_token(units[1]) == pool[1][1]  # asked again: the same token
    kinds = [e.kind.value for e in site.entries()]
    assert kinds == ["enroll"] * 4 + ["token"] * 2  # the same unit again wrote nothing


def test_a_pool_device_works_before_the_sync_and_the_sync_names_it_once(
    line: Line, made: dict[str, Any], site: StationSite, client: httpx.Client
) -> None:
    serial, hardware = unique("SN"), "02:00:00:00:bb:01"
    device_id = site.enroll(serial=serial, hardware=hardware)
    token = site.pool_token(device_id)
    station_line.record_test_run(site.ctx, site.post, site.fixtures, device_id, passed=True, measurements={})
    station_line.bless(site.ctx, site.post, site.fixtures, device_id)

    before = ok(me(client, token))  # nothing synced yet
    assert (before["id"], before["serial_number"], before["product_id"]) == (
        device_id,
        device_id,
        line.product["id"],
    )
    view = ok(line.device(device_id))
    assert view["state"] == "defined" and view["hardware_id"] is None
    assert [e["actor"] for e in line.events("device.defined")] == [f"station:{made['station']['id']}"]
    assert ok(me(client, token))["id"] == device_id  # a second request finds the same device

    station_id = made["station"]["id"]
    answer = line.synced(station_id, site.entries())
    assert answer["applied"] == 4
    assert [d["id"] for d in line.devices()] == [device_id]
    view = ok(line.device(device_id))
    assert (view["serial_number"], view["hardware_id"], view["state"]) == (serial, hardware, "blessed")
    assert len(ok(line.tenant.get(f"{API}/devices/{device_id}/test-runs"))) == 1
    assert [e["subject_id"] for e in line.events("device.blessed")] == [device_id]
    assert len(line.events("device.defined")) == 1
    assert line.shown(station_id)["devices_made"] == 1
    after = ok(me(client, token))  # the token entry kept the token
    assert (after["id"], after["serial_number"]) == (device_id, serial)

    assert line.synced(station_id, site.entries())["applied"] == 0
    assert len(line.devices()) == 1 and len(line.events("device.blessed")) == 1


def test_a_pool_unit_synced_before_it_connects_is_found_by_its_token(
    line: Line, made: dict[str, Any], site: StationSite, client: httpx.Client
) -> None:
    device_id = site.unit(serial=unique("SN"))
    token = site.pool_token(device_id)
    line.synced(made["station"]["id"], site.entries())
    assert ok(me(client, token))["id"] == device_id
    assert [d["id"] for d in line.devices()] == [device_id]


def test_a_pool_token_enrolled_but_not_handed_out_yet_still_authenticates_after_the_sync(
    line: Line, made: dict[str, Any], site: StationSite, client: httpx.Client
) -> None:
    """The ledger holds the unit's enroll entry but not (yet) its token entry."""
    device_id = site.enroll(serial=unique("SN"))
    line.synced(made["station"]["id"], site.entries())
    token = dict(pool_of(made["bundle"]))[device_id]
    assert ok(me(client, token))["id"] == device_id


def test_a_pool_token_the_server_rotated_or_revoked_stays_dead(
    line: Line, made: dict[str, Any], site: StationSite, client: httpx.Client
) -> None:
    rotated, revoked = site.unit(serial=unique("SN")), site.unit(serial=unique("SN"))
    tokens = {device_id: site.pool_token(device_id) for device_id in (rotated, revoked)}
    for device_id in (rotated, revoked):
        assert ok(me(client, tokens[device_id]))["id"] == device_id  # opened before the sync
    new_token = line.tenant.token(rotated)
    assert line.tenant.delete(f"{API}/devices/{revoked}/credentials").status_code == 204
    for device_id in (rotated, revoked):
        assert_problem(me(client, tokens[device_id]), 401)
    # The station's token entries, synced later, do not bring the old tokens back either.
    line.synced(made["station"]["id"], site.entries())
    for device_id in (rotated, revoked):
        assert_problem(me(client, tokens[device_id]), 401)
    assert ok(me(client, new_token))["id"] == rotated


def test_a_revoked_stations_unused_pool_authenticates_nothing(
    line: Line, made: dict[str, Any], site: StationSite, client: httpx.Client
) -> None:
    pool = dict(pool_of(made["bundle"]))
    connected = site.unit(serial=unique("SN"))  # used, and connected before the revocation
    connected_token = site.pool_token(connected)
    assert ok(me(client, connected_token))["id"] == connected
    named = site.unit(serial=unique("SN"))  # used before the revocation, synced after it
    named_token = site.pool_token(named)
    station_id = made["station"]["id"]
    ok(line.tenant.post(f"{API}/stations/{station_id}/revoke", json={}))
    late = site.unit(serial=unique("SN"))  # made after the revocation: its entries stop the sync
    late_token = site.pool_token(late)
    unused = [pool[d] for d in list(pool)[3:]]

    for token in (named_token, late_token, *unused):
        assert_problem(me(client, token), 401)
    assert ok(me(client, connected_token))["id"] == connected
    problem = line.stopped(station_id, site.entries())
    assert problem["stopped_at"] == 9 and "revoked" in problem["reason"]
    assert ok(me(client, named_token))["id"] == named
    assert ok(line.device(named))["state"] == "blessed"
    for token in (late_token, *unused):
        assert_problem(me(client, token), 401)
    assert_problem(line.device(late), 404)
    assert ok(me(client, connected_token))["id"] == connected


def test_a_pool_never_crosses_organizations(
    line: Line,
    made: dict[str, Any],
    site: StationSite,
    make_tenant: Any,
    client: httpx.Client,
    tmp_path: Path,
) -> None:
    stranger = Line(make_tenant())
    theirs = stranger.station(budget=3, token_pool=True)
    their_id, their_token = pool_of(theirs["bundle"])[0]
    # Their pool token is a device of their product, never of ours.
    assert ok(me(client, their_token))["product_id"] == stranger.product["id"]
    assert_problem(line.device(their_id), 404)
    assert line.devices() == []
    assert [d["id"] for d in stranger.devices()] == [their_id]

    # A station of ours (a thief of their bundle, say) enrolling units under their ids: its
    # sync stops there and their device stays theirs.
    secrets = {**made["bundle"]["secrets"], "pool": theirs["bundle"]["secrets"]["pool"]}
    dishonest = {**made["bundle"], "secrets": secrets}
    with station_site(dishonest, tmp_path / "dishonest") as thief:
        stolen = thief.unit(serial=unique("SN"))
        assert stolen == their_id
        problem = line.stopped(made["station"]["id"], thief.entries())
    assert problem["stopped_at"] == 1 and "pool" in problem["reason"]
    assert line.devices() == []
    assert ok(stranger.device(their_id))["product_id"] == stranger.product["id"]
    assert site.entries() == []


def test_the_line_stops_at_the_end_of_the_pool(line: Line, tmp_path: Path) -> None:
    made = line.station(budget=2, token_pool=True)
    with station_site(made["bundle"], tmp_path / "station") as site:
        hardware = "02:00:00:00:cc:01"
        units = [site.enroll(hardware=hardware), site.enroll()]
        assert units == [device_id for device_id, _ in pool_of(made["bundle"])]
        with pytest.raises(StationLimitReached):
            site.enroll()
        assert site.enroll(hardware=hardware) == units[0]  # a unit it made already still goes on
        assert line.synced(made["station"]["id"], site.entries())["applied"] == 2
    assert line.shown(made["station"]["id"])["devices_made"] == 2


def test_a_station_certificate_names_a_pool_unit_by_its_id(
    line: Line, made: dict[str, Any], site: StationSite, application: Application
) -> None:
    serial = unique("SN")
    device_id = site.unit(serial=serial)
    certificate = unit_certificate(made["bundle"], serial, device_id=device_id)
    site.record_certificate(device_id, certificate)
    registered = register_device(application.services, der(certificate), via="test")
    assert (registered.device.id, registered.device.serial_number, registered.created) == (
        device_id,
        serial,
        True,
    )
    assert line.synced(made["station"]["id"], site.entries())["applied"] == 4
    assert [d["id"] for d in line.devices()] == [device_id]
    assert ok(line.device(device_id))["state"] == "blessed"


def test_a_pool_device_connects_over_mqtt_before_the_sync_and_activates(
    line: Line, made: dict[str, Any], site: StationSite, application: Application
) -> None:
    assert line.product.get("requires_blessing") is False
    device_id = site.enroll(serial=unique("SN"))
    token = site.pool_token(device_id)
    _other, other_token = pool_of(made["bundle"])[1]
    with embedded_broker(application) as (host, port):
        with mqtt_client(host, port, device_id, username=device_id, password=token) as connected:
            assert connected.connack_rc == 0
        with mqtt_client(host, port, device_id, username=device_id, password=other_token) as wrong:
            assert wrong.connack_rc == NOT_AUTHORIZED  # another unit's pool token
        # ...which the refused connect did not open: that unit is still unknown here.
        assert [row.opened_at for row in _pool_rows(application, made["station"]["id"])][1] is None
        assert line.device(_other).status_code == 404
        wait_for(
            lambda: line.device(device_id).json().get("state") == "activated",
            what="the pool device activated",
        )
    assert ok(line.device(device_id))["serial_number"] == device_id
    assert len(line.events("device.activated")) == 1
