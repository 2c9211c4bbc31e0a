"""Issue 15's "done when": a maker runs the Blynk static-token story and the Electric Imp
factory story from the console alone, and sees it on the overview. The console makes the
product, the tokens (from a file), the labels and the line's enrollment token, issues a
credential, disclaims one unit and deletes another; only what is not a person does the rest:
a fixture enrolls and tests units over HTTP, units connect to the real MQTT broker of the
served process with their tokens (and so activate), an owner's phone reads a QR label and
claims the unit."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Callable
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect

from tests.e2e.browser.console import checked, into_console, member
from tests.e2e.browser.owners import BoxedDevice, Person, scanned
from tests.support.api import Tenant, unique
from tests.support.factory import bless, enroll, hardware_id, record_run
from tests.support.mqtt import mqtt_client, wait_for

API = "/api/v1"
HOST = "127.0.0.1"  # the served process's embedded broker


def test_a_maker_runs_both_stories_from_the_console(
    phone: Page,
    make_desktop: Callable[[], Page],
    tenant: Tenant,
    make_person: Callable[[], Person],
    http: httpx.Client,
    mqtt_port: int,
    tmp_path: Path,
) -> None:
    console = make_desktop()
    admin = make_person()
    member(tenant, admin, "admin")
    into_console(console, admin)
    base = f"/console/{tenant.organization_id}"

    # A product, made in the console.
    console.goto(f"{base}/products")
    name = unique("Story lamp")
    console.get_by_label("Name", exact=True).fill(name)
    console.get_by_role("button", name="Create product").click()
    expect(console.get_by_role("status")).to_contain_text("Product created")
    product_id = next(p["id"] for p in tenant.get(f"{API}/products").json()["items"] if p["name"] == name)

    # Blynk: static tokens from a file, labels, the one export.
    serials = [unique("LAMP") for _ in range(3)]
    sheet = tmp_path / "serials.csv"
    sheet.write_text("Serial\n" + "".join(f"{serial}\n" for serial in serials))
    console.goto(f"{base}/static-tokens")
    form = console.locator("form", has=console.get_by_role("button", name="Create tokens"))
    form.get_by_label("Product").select_option(product_id)
    form.get_by_label(re.compile("CSV file")).set_input_files(str(sheet))
    form.get_by_label(re.compile("Column mapping")).fill("Serial = serial_number")
    form.get_by_role("button", name="Create tokens").click()
    expect(console.get_by_role("status")).to_contain_text("The batch was created")
    with console.expect_download() as pdf:
        console.get_by_role("link", name="Labels to print (PDF)").click()
    assert Path(pdf.value.path()).read_bytes().startswith(b"%PDF")
    with console.expect_download() as labels:
        console.get_by_role("link", name="QR codes and CSV (zip)").click()
    with zipfile.ZipFile(labels.value.path()) as archive:
        claim_urls = {serial: scanned(archive.read(f"qr/{serial}.png")) for serial in serials}
    with console.expect_download() as export:
        console.get_by_role("button", name=re.compile("Download the tokens")).click()
    with zipfile.ZipFile(export.value.path()) as archive:
        rows = {
            row["serial_number"]: row
            for row in csv.DictReader(io.StringIO(archive.read("tokens.csv").decode()))
        }

    # Two units come online with their tokens (and activate); an owner claims one.
    for serial in serials[:2]:
        unit_id, token = rows[serial]["device_id"], rows[serial]["device_token"]
        with mqtt_client(HOST, mqtt_port, unit_id, password=token) as device:
            assert device.connack_rc == 0
            wait_for(_activated(tenant, unit_id), what="activation")
    owner = make_person()
    first = rows[serials[0]]
    path = "/claim/" + claim_urls[serials[0]].rsplit("/claim/", 1)[1]
    owner.claim(http, BoxedDevice(first["device_id"], name, serials[0], path))

    # Electric Imp: the line's enrollment token from the console; a fixture tests two units.
    console.goto(f"{base}/factory")
    console.get_by_label("Product", exact=True).select_option(product_id)
    console.get_by_label(re.compile("^Name")).fill("Story line")
    console.get_by_role("button", name="Create an enrollment token").click()
    enrollment_token = console.get_by_test_id("new-token").inner_text().strip()
    good, bad = hardware_id(), hardware_id()
    units = {}
    for hardware, passed in ((good, True), (bad, False)):
        enrolled = enroll(http, enrollment_token, hardware)
        assert enrolled.status_code == 201, enrolled.text
        units[passed] = enrolled.json()["device"]["id"]
        record_run(tenant, units[passed], passed, fixture="story bench")
        assert bless(tenant, units[passed]).status_code == 200
    console.goto(f"{base}/factory")
    runs = console.get_by_test_id("test-runs")
    expect(runs.locator(".result.passed")).to_have_count(1)
    expect(runs.locator(".result.failed")).to_have_count(1)

    # The blessed unit gets its token from the console and comes online: activated.
    console.goto(f"{base}/devices/{units[True]}")
    console.get_by_label("New credential").select_option("token")
    console.get_by_role("button", name=re.compile("^Issue")).click()
    secret = console.get_by_test_id("issued-secret").inner_text().strip()
    with mqtt_client(HOST, mqtt_port, units[True], password=secret) as device:
        assert device.connack_rc == 0
        wait_for(_activated(tenant, units[True]), what="the blessed unit's activation")

    # The overview tells it all.
    console.goto(f"{base}?product={product_id}")
    row = console.get_by_test_id("funnel").locator(f'tr[data-product="{product_id}"]')
    expect(row.locator('td[data-state="activated"]')).to_have_text("3")
    expect(row.locator('td[data-state="failed"]')).to_have_text("1")
    expect(row.locator('td[data-state="claimed"]')).to_have_text("1")
    expect(console.get_by_test_id("chart-activated")).to_contain_text("3")
    expect(console.get_by_test_id("fixture-yield").locator('tr[data-source="story bench"]')).to_contain_text(
        "50 %"
    )
    checked(console)

    # Disclaim the claimed unit, delete the one never switched on, from the console.
    console.goto(f"{base}/devices/{first['device_id']}")
    console.get_by_role("link", name="Take back from its owner").click()
    console.get_by_role("button", name="Disclaim").click()
    expect(console.get_by_role("status")).to_contain_text("disclaimed")
    unused = rows[serials[2]]["device_id"]
    console.goto(f"{base}/devices/{unused}/delete")
    console.get_by_role("button", name="Delete for good").click()
    expect(console.get_by_role("status")).to_contain_text("deleted")
    console.goto(f"{base}?product={product_id}")
    row = console.get_by_test_id("funnel").locator(f'tr[data-product="{product_id}"]')
    expect(row.locator('td[data-state="claimed"]')).to_have_text("0")
    expect(row.locator('td[data-state="total"]')).to_have_text("4")

    # The owner's phone reads the deleted unit's label: the claim page says so.
    phone.goto("/claim/" + claim_urls[serials[2]].rsplit("/claim/", 1)[1])
    expect(phone.get_by_role("main")).to_contain_text(re.compile("deleted", re.IGNORECASE))


def _activated(tenant: Tenant, device_id: str) -> Callable[[], bool]:
    return lambda: tenant.get(f"{API}/devices/{device_id}").json()["state"] == "activated"
