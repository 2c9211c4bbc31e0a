"""The console's devices list (issue 15): find devices by MAC, id, metadata, online and owner,
newest first; choose some and export them as CSV, move them to a group, disclaim and delete
them after a page that says what it breaks (all or none); a viewer may export but not act.
At phone and desktop widths with axe-core."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.e2e.browser.console import checked, into_console, member
from tests.e2e.browser.owners import Person
from tests.support.api import Tenant, unique

API = "/api/v1"


def defined(tenant: Tenant, product_id: str, devices: list[dict[str, object]]) -> list[dict[str, object]]:
    made = tenant.post(f"{API}/device-batches", json={"product_id": product_id, "devices": devices})
    assert made.status_code == 201, made.text
    return list(made.json()["devices"])


def test_devices_are_found_by_mac_id_metadata_and_order(
    browser: Page, tenant: Tenant, make_person: Callable[[], Person]
) -> None:
    product = tenant.product(name=unique("Lamp"), fields=[{"name": "colour", "type": "string"}])
    serials = [unique("SN") for _ in range(3)]
    made = defined(
        tenant,
        product["id"],
        [
            {"serial_number": serials[0], "mac": "02-AA-BB-CC-DD-01", "metadata": {"colour": "red"}},
            {"serial_number": serials[1], "metadata": {"colour": "blue"}},
            {"serial_number": serials[2], "metadata": {"colour": "red"}},
        ],
    )
    viewer = make_person()
    member(tenant, viewer, "viewer")
    into_console(browser, viewer)
    browser.goto(f"/console/{tenant.organization_id}/devices?product={product['id']}")
    rows = browser.get_by_test_id("devices").locator("tbody tr")
    browser.get_by_label("Device id, MAC or hardware id").fill("02:aa:bb:cc:dd:01")
    browser.get_by_role("button", name="Show").click()
    expect(rows).to_have_count(1)
    expect(rows).to_contain_text(serials[0])
    browser.get_by_label("Device id, MAC or hardware id").fill("")
    browser.get_by_label("Metadata (name=value)").fill("colour=red")
    browser.get_by_label("Order").select_option("newest")
    browser.get_by_role("button", name="Show").click()
    expect(rows).to_have_count(2)
    # Newest first is id order backwards (UUIDv7: a batch's ids share a millisecond).
    newest = max((made[0], made[2]), key=lambda device: str(device["id"]))
    expect(rows.first).to_contain_text(str(newest["serial_number"]))
    checked(browser)

    browser.get_by_label("Metadata (name=value)").fill("no equals sign")
    browser.get_by_role("button", name="Show").click()
    expect(browser.get_by_role("alert")).to_contain_text("name=value")

    browser.get_by_label("Device id, MAC or hardware id").fill(str(made[1]["id"]))
    browser.get_by_label("Metadata (name=value)").fill("")
    browser.get_by_role("button", name="Show").click()
    expect(browser).to_have_url(re.compile(f"/devices/{made[1]['id']}$"))


def test_chosen_devices_are_exported_moved_disclaimed_and_deleted(
    browser: Page, tenant: Tenant, make_person: Callable[[], Person]
) -> None:
    product = tenant.product(name=unique("Kettle"))
    group = tenant.created(
        f"{API}/products/{product['id']}/groups", {"name": unique("bench"), "kind": "development"}
    )
    serials = [unique("SN") for _ in range(3)]
    made = defined(tenant, product["id"], [{"serial_number": serial} for serial in serials])
    admin = make_person()
    member(tenant, admin, "admin")
    into_console(browser, admin)
    browser.goto(f"/console/{tenant.organization_id}/devices?product={product['id']}")
    table = browser.get_by_test_id("devices")
    table.get_by_label(f"Choose {serials[0]}").check()
    table.get_by_label(f"Choose {serials[1]}").check()
    with browser.expect_download() as download:
        browser.get_by_role("button", name="Export CSV").click()
    text = Path(download.value.path()).read_text(encoding="utf-8")
    exported = list(csv.DictReader(io.StringIO(text)))
    assert sorted(row["serial_number"] for row in exported) == sorted(serials[:2])

    browser.get_by_label("Group to move them to").select_option(group["id"])
    browser.get_by_role("button", name="Move…").click()
    expect(browser.get_by_test_id("chosen")).to_contain_text(serials[1])
    checked(browser)
    browser.get_by_role("button", name="Move them").click()
    expect(browser.get_by_role("status")).to_contain_text("2 devices")
    moved = {tenant.get(f"{API}/devices/{device['id']}").json().get("group_id") for device in made[:2]}
    assert moved == {group["id"]}

    browser.get_by_test_id("devices").get_by_label(f"Choose {serials[2]}").check()
    browser.get_by_role("button", name="Disclaim…").click()
    browser.get_by_role("button", name="Disclaim them").click()
    expect(browser.get_by_role("heading", name="Not done")).to_be_visible()  # it is not claimed
    assert tenant.get(f"{API}/devices/{made[2]['id']}").status_code == 200

    browser.goto(f"/console/{tenant.organization_id}/devices?product={product['id']}")
    select_all = browser.get_by_label("Choose every device on this page")
    select_all.check()  # the console's script shows it and checks every row
    browser.get_by_role("button", name="Delete…").click()
    expect(browser.get_by_role("note")).to_contain_text("QR codes will say the device was deleted")
    browser.get_by_role("button", name="Delete them for good").click()
    expect(browser.get_by_role("status")).to_contain_text("3 devices")
    assert all(tenant.get(f"{API}/devices/{device['id']}").status_code == 404 for device in made)


def test_a_viewer_exports_but_cannot_act_and_other_organizations_devices_are_refused(
    browser: Page, tenant: Tenant, make_tenant: Callable[[], Tenant], make_person: Callable[[], Person]
) -> None:
    product = tenant.product()
    (mine,) = defined(tenant, product["id"], [{"serial_number": unique("SN")}])
    other = make_tenant()
    (theirs,) = defined(other, other.product()["id"], [{"serial_number": unique("SN")}])
    viewer = make_person()
    member(tenant, viewer, "viewer")
    into_console(browser, viewer)
    browser.goto(f"/console/{tenant.organization_id}/devices")
    expect(browser.get_by_role("button", name="Export CSV")).to_be_visible()
    expect(browser.get_by_role("button", name="Delete…")).to_have_count(0)
    # A form forged with another organization's device: a 404 page, nothing exported.
    csrf = browser.locator('input[name="csrf"]').first.input_value()
    answer = browser.request.post(
        f"/console/{tenant.organization_id}/devices/chosen",
        form={"csrf": csrf, "action": "export", "device": str(theirs["id"])},
    )
    assert answer.status == 404
    forged = browser.request.post(
        f"/console/{tenant.organization_id}/devices/chosen",
        form={"csrf": csrf, "action": "delete", "confirmed": "yes", "device": str(mine["id"])},
    )
    assert forged.status == 403
    assert tenant.get(f"{API}/devices/{mine['id']}").status_code == 200


def test_a_credential_is_issued_shown_once_replaced_and_revoked_from_the_device_page(
    browser: Page, tenant: Tenant, make_person: Callable[[], Person]
) -> None:
    device = tenant.device(tenant.product()["id"])
    admin, viewer = make_person(), make_person()
    member(tenant, admin, "admin")
    member(tenant, viewer, "viewer")

    def works(secret: str) -> bool:
        answer = tenant.http.get("/device/v1/me", headers={"Authorization": f"Bearer {secret}"})
        assert answer.status_code in (200, 401), answer.text
        return answer.status_code == 200

    into_console(browser, admin)
    browser.goto(f"/console/{tenant.organization_id}/devices/{device['id']}")
    browser.get_by_label("New credential").select_option("token")
    browser.get_by_role("button", name=re.compile("^Issue")).click()
    expect(browser.get_by_role("note")).to_contain_text("shown this once")
    expect(browser.get_by_role("button", name="Copy the secret")).to_be_visible()  # the script shows it
    first = browser.get_by_test_id("issued-secret").inner_text().strip()
    assert works(first)
    checked(browser)
    browser.get_by_role("link", name="Back to the device").click()
    expect(browser.get_by_test_id("credentials")).to_contain_text("issued")
    assert first not in browser.content()  # never shown again
    browser.get_by_role("button", name=re.compile("^Issue")).click()
    second = browser.get_by_test_id("issued-secret").inner_text().strip()
    assert works(second) and not works(first)

    browser.get_by_role("link", name="Back to the device").click()
    browser.get_by_role("link", name="Revoke its credentials").click()
    expect(browser.get_by_role("note")).to_contain_text("stop working at once")
    browser.get_by_role("button", name="Revoke its credentials").click()
    expect(browser.get_by_role("status")).to_contain_text("cut off")
    assert not works(second)
    assert tenant.get(f"{API}/devices/{device['id']}").json()["state"] == "defined"  # the device stays

    browser.context.clear_cookies()
    into_console(browser, viewer)
    browser.goto(f"/console/{tenant.organization_id}/devices/{device['id']}")
    expect(browser.get_by_test_id("credentials")).to_be_visible()
    expect(browser.get_by_label("New credential")).to_have_count(0)
    expect(browser.get_by_role("link", name="Revoke its credentials")).to_have_count(0)
