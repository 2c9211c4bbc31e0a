"""Searching devices (the console's devices list): by MAC or hardware id along their indexes,
and by a metadata value, which no index holds: each page reads at most a window of devices
and its cursor goes on after them, so every match is found, once, a bounded read at a time,
oldest or newest first, on both databases."""

from __future__ import annotations

import pytest

from lineside.adapters.db import device_repository
from lineside.bootstrap import Application
from lineside.services import devices
from lineside.services.organizations import operator_principal
from lineside.services.ports import DeviceFilter
from tests.support.api import Tenant, unique
from tests.support.factory import enrolled, factory_token, hardware_id

API = "/api/v1"


def every_match(application: Application, tenant: Tenant, filters: DeviceFilter) -> tuple[list[str], int]:
    """The serials of every match, page by page, and how many pages it took."""
    principal = operator_principal(application.services, tenant.organization_id)
    found, cursor, pages = [], None, 0
    while True:
        page = devices.list_devices(application.services, principal, filters=filters, cursor=cursor, limit=50)
        found += [device.serial_number for device in page.items]
        pages += 1
        if page.next_cursor is None:
            return found, pages
        cursor = page.next_cursor


@pytest.mark.parametrize("newest_first", [False, True])
def test_a_metadata_search_reads_a_window_at_a_time_and_finds_every_match(
    application: Application, tenant: Tenant, monkeypatch: pytest.MonkeyPatch, newest_first: bool
) -> None:
    product = tenant.product(fields=[{"name": "colour", "type": "string"}])
    units = [
        {"serial_number": unique("SN"), "metadata": {"colour": "red" if n in (1, 14, 27) else "blue"}}
        for n in range(30)
    ]
    made = tenant.post(f"{API}/device-batches", json={"product_id": product["id"], "devices": units})
    assert made.status_code == 201, made.text
    red = sorted(
        (
            d
            for d in made.json()["devices"]
            if d["serial_number"] in {units[n]["serial_number"] for n in (1, 14, 27)}
        ),
        key=lambda d: d["id"],
        reverse=newest_first,
    )
    monkeypatch.setattr(device_repository, "METADATA_SEARCH_WINDOW", 10)

    filters = DeviceFilter(product_id=product["id"], metadata=("colour", "red"), newest_first=newest_first)
    found, pages = every_match(application, tenant, filters)

    assert found == [device["serial_number"] for device in red]
    assert pages >= 3  # 30 devices, 10 read per page
    whole, _pages = every_match(
        application, tenant, DeviceFilter(product_id=product["id"], metadata=("colour", "green"))
    )
    assert whole == []


def test_a_mac_or_a_hardware_id_finds_its_device_once(application: Application, tenant: Tenant) -> None:
    product = tenant.product()
    mac = "02:00:5e:10:00:01"
    by_mac = tenant.post(
        f"{API}/device-batches",
        json={"product_id": product["id"], "devices": [{"serial_number": unique("SN"), "mac": mac}]},
    ).json()["devices"][0]
    chip = hardware_id()
    on_the_line = enrolled(tenant.http, factory_token(tenant, product["id"]), chip)["device"]
    both = enrolled(tenant.http, factory_token(tenant, product["id"]), mac)[
        "device"
    ]  # a DUT read as that MAC

    found, _pages = every_match(application, tenant, DeviceFilter(hardware_address=mac))
    assert sorted(found) == sorted([by_mac["serial_number"], both["serial_number"]])
    found, _pages = every_match(application, tenant, DeviceFilter(hardware_address=chip))
    assert found == [on_the_line["serial_number"]]
