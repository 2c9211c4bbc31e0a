"""The manufacturer console (issue 15, first pages): a person invited into a maker's
organization signs in and sees the overview (devices by state per product, the latest
activity), finds devices by product, state and serial number a page at a time, opens one
(facts, test runs with a word beside the colour, history), and, as an admin, creates a
product; a viewer sees the same pages without the form, and another organization's ids are
404 pages. At phone and desktop widths, with axe-core on every page."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.e2e.browser.claim_page import main, sign_in
from tests.e2e.browser.console import checked, into_console, member
from tests.e2e.browser.owners import Person, boxed_device, scanned
from tests.support.api import Tenant, unique
from tests.support.factory import enrolled, factory_token
from tests.support.webhooks import Receiver, wait_until

pytestmark = pytest.mark.browser

API = "/api/v1"


def test_an_admin_sees_the_overview_finds_a_device_and_opens_its_history(
    browser: Page, tenant: Tenant, make_person: Callable[[], Person]
) -> None:
    product = tenant.product(name=unique("Sensor"))
    defined = [tenant.device(product["id"])["id"] for _ in range(3)]
    dut = enrolled(tenant.http, factory_token(tenant, product["id"]))["device"]
    passed = tenant.post(f"{API}/devices/{dut['id']}/test-runs", json={"passed": False, "fixture": "bench 2"})
    assert passed.status_code == 201, passed.text
    person = make_person()
    member(tenant, person, "admin")

    into_console(browser, person)
    expect(main(browser).get_by_test_id("seat")).to_contain_text("your role: admin")
    row = browser.get_by_test_id("funnel").locator(f'tr[data-product="{product["id"]}"]')
    expect(row.locator('td[data-state="defined"]')).to_have_text("3")
    expect(row.locator('td[data-state="under_test"]')).to_have_text("1")
    expect(row.locator('td[data-state="total"]')).to_have_text("4")
    expect(browser.get_by_test_id("activity")).to_contain_text("device.tested")
    checked(browser)

    browser.get_by_role("navigation", name="Console").get_by_role("link", name="Devices").click()
    expect(browser.get_by_test_id("devices").locator("tbody tr")).to_have_count(4)
    browser.get_by_label("State").select_option("under_test")
    browser.get_by_role("button", name="Show").click()
    expect(browser.get_by_test_id("devices").locator("tbody tr")).to_have_count(1)
    checked(browser)
    browser.get_by_test_id("devices").get_by_role("link").first.click()
    expect(browser.get_by_test_id("facts")).to_contain_text(dut["id"])
    failed = browser.get_by_test_id("runs").locator("td.result")
    expect(failed).to_have_text("failed")  # a word, not only a colour
    expect(browser.get_by_test_id("history")).to_contain_text("device.enrolled")
    expect(browser.get_by_test_id("lifecycle")).to_contain_text("under test")
    expect(browser.get_by_test_id("lifecycle").locator("li").last).to_contain_text("its state now")
    checked(browser)
    assert set(defined).isdisjoint({dut["id"]})


def test_device_lists_come_a_page_at_a_time_and_search_by_serial(
    browser: Page, tenant: Tenant, make_person: Callable[[], Person]
) -> None:
    product = tenant.product(name=unique("Lamp"))
    serials = [unique("SN") for _ in range(55)]
    made = tenant.post(f"{API}/device-batches", json={"product_id": product["id"], "serial_numbers": serials})
    assert made.status_code == 201, made.text
    person = make_person()
    member(tenant, person, "viewer")
    into_console(browser, person)
    browser.goto(f"/console/{tenant.organization_id}/devices?product={product['id']}")
    expect(browser.get_by_test_id("devices").locator("tbody tr")).to_have_count(50)
    browser.get_by_role("link", name=re.compile("^Next")).click()
    expect(browser.get_by_test_id("devices").locator("tbody tr")).to_have_count(5)
    browser.get_by_label("Serial number").fill(serials[7])
    browser.get_by_role("button", name="Show").click()
    expect(browser.get_by_test_id("devices")).to_contain_text(serials[7])
    expect(browser.get_by_test_id("devices").locator("tbody tr")).to_have_count(1)


def test_an_admin_creates_a_product_and_a_viewer_cannot(
    browser: Page, tenant: Tenant, make_person: Callable[[], Person], http: httpx.Client
) -> None:
    admin, viewer = make_person(), make_person()
    member(tenant, admin, "admin")
    member(tenant, viewer, "viewer")
    into_console(browser, admin)
    browser.get_by_role("navigation", name="Console").get_by_role("link", name="Products").click()
    name = unique("Kettle")
    browser.get_by_label("Name").fill(name)
    browser.get_by_label(re.compile("Metadata fields")).fill("colour: string required\nbad line")
    browser.get_by_role("button", name="Create product").click()
    expect(browser.get_by_role("alert")).to_contain_text("Metadata field line 2")
    browser.get_by_label(re.compile("Metadata fields")).fill("colour: string required")
    browser.get_by_role("button", name="Create product").click()
    expect(browser.get_by_role("status")).to_contain_text("Product created")
    expect(browser.get_by_test_id("products")).to_contain_text(f"{name}")
    expect(browser.get_by_test_id("products")).to_contain_text("colour (string, required)")
    checked(browser)
    assert any(p["name"] == name for p in tenant.get(f"{API}/products").json()["items"])

    browser.context.clear_cookies()
    into_console(browser, viewer)
    browser.goto(f"/console/{tenant.organization_id}/products")
    expect(browser.get_by_test_id("products")).to_contain_text(name)
    expect(browser.get_by_role("button", name="Create product")).to_have_count(0)
    expect(main(browser)).to_contain_text("Your role (viewer) can look at products")


def test_other_organizations_and_people_without_a_maker_get_no_console(
    browser: Page, tenant: Tenant, make_tenant: Callable[[], Tenant], make_person: Callable[[], Person]
) -> None:
    person = make_person()
    member(tenant, person, "admin")
    other = make_tenant()
    device = other.device(other.product()["id"])
    into_console(browser, person)
    for path in (
        f"/console/{other.organization_id}",
        f"/console/{tenant.organization_id}/devices/{device['id']}",
    ):
        opened = browser.goto(path)
        assert opened is not None and opened.status == 404, path
    browser.context.clear_cookies()
    stranger = make_person()
    browser.goto("/console")
    sign_in(browser, stranger.email, stranger.password)
    expect(main(browser)).to_contain_text("The console is for people of a manufacturer's organization")
    checked(browser)


def test_an_operator_makes_static_tokens_from_a_file_prints_labels_and_exports_once(
    browser: Page, tenant: Tenant, make_person: Callable[[], Person], tmp_path: Path
) -> None:
    product = tenant.product(
        name=unique("Plug"), fields=[{"name": "colour", "type": "string", "required": True}]
    )
    operator = make_person()
    member(tenant, operator, "operator")
    into_console(browser, operator)
    browser.get_by_role("navigation", name="Console").get_by_role("link", name="Static tokens").click()
    expect(browser).to_have_url(re.compile(r"/static-tokens$"))
    checked(browser)

    serials = [unique("SN") for _ in range(3)]
    bad = tmp_path / "bad.csv"
    bad.write_text(f"Serial Number,Colour\n{serials[0]},red\n{serials[1]},\n{serials[0]},blue\n")
    form = browser.locator("form", has=browser.get_by_role("button", name="Create tokens"))
    form.get_by_label("Product").select_option(product["id"])
    form.get_by_label(re.compile("CSV file")).set_input_files(str(bad))
    form.get_by_label(re.compile("Column mapping")).fill("Serial Number = serial_number\nColour = colour")
    form.get_by_role("button", name="Create tokens").click()
    expect(browser.get_by_test_id("bad-rows").locator("tbody tr")).to_have_count(
        2
    )  # every bad row, before writing
    assert tenant.get(f"{API}/devices", params={"product_id": product["id"]}).json()["items"] == []
    checked(browser)

    good = tmp_path / "good.csv"
    good.write_text("Serial Number,Colour\n" + "".join(f"{serial},red\n" for serial in serials))
    form = browser.locator("form", has=browser.get_by_role("button", name="Create tokens"))
    form.get_by_label(re.compile("CSV file")).set_input_files(str(good))
    form.get_by_label(re.compile("Column mapping")).fill("Serial Number = serial_number\nColour = colour")
    form.get_by_role("button", name="Create tokens").click()
    expect(browser.get_by_role("status")).to_contain_text("The batch was created")
    expect(browser.get_by_test_id("batch")).to_contain_text("not exported yet")
    checked(browser)

    with browser.expect_download() as labels:
        browser.get_by_role("link", name="QR codes and CSV (zip)").click()
    with zipfile.ZipFile(labels.value.path()) as archive:
        url = scanned(archive.read(f"qr/{serials[1]}.png"))
    assert "/claim/lsc_" in url
    with browser.expect_download() as pdf:
        browser.get_by_role("link", name="Labels to print (PDF)").click()
    assert Path(pdf.value.path()).read_bytes().startswith(b"%PDF")

    expect(browser.get_by_role("note")).to_contain_text("Once only")
    with browser.expect_download() as export:
        browser.get_by_role("button", name=re.compile("Download the tokens")).click()
    with zipfile.ZipFile(export.value.path()) as archive:
        rows = list(csv.DictReader(io.StringIO(archive.read("tokens.csv").decode())))
    assert sorted(row["serial_number"] for row in rows) == sorted(serials)
    token = rows[0]["device_token"]
    me = tenant.http.get("/device/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200, me.text

    browser.reload()
    expect(browser.get_by_test_id("batch")).to_contain_text("exported")
    browser.get_by_role("button", name="Regenerate the tokens").click()
    expect(browser.get_by_role("status")).to_contain_text("no longer work")
    assert tenant.http.get("/device/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_a_viewer_sees_batches_but_cannot_make_or_export_them(
    browser: Page, tenant: Tenant, make_person: Callable[[], Person]
) -> None:
    product = tenant.product()
    batch = tenant.created(f"{API}/products/{product['id']}/static-tokens", {"count": 2})
    viewer = make_person()
    member(tenant, viewer, "viewer")
    into_console(browser, viewer)
    browser.goto(f"/console/{tenant.organization_id}/static-tokens")
    expect(browser.get_by_test_id("batches")).to_contain_text(product["name"])
    expect(browser.get_by_role("button", name="Create tokens")).to_have_count(0)
    browser.goto(f"/console/{tenant.organization_id}/static-tokens/{batch['batch_id']}")
    expect(browser.get_by_role("button", name=re.compile("Download the tokens"))).to_have_count(0)
    checked(browser)


def test_the_account_page_and_the_landing_page_lead_a_maker_to_the_console(
    browser: Page, tenant: Tenant, make_person: Callable[[], Person]
) -> None:
    person = make_person()
    member(tenant, person, "viewer")
    browser.goto("/")
    browser.get_by_role("link", name="The console").click()
    sign_in(browser, person.email, person.password)
    expect(browser).to_have_url(re.compile(rf"/console/{tenant.organization_id}$"))
    browser.goto("/account")
    browser.get_by_test_id("console-link").get_by_role("link", name="open the console").click()
    expect(browser).to_have_url(re.compile(rf"/console/{tenant.organization_id}$"))


def test_an_operator_opens_a_line_watches_its_units_and_closes_it(
    browser: Page, tenant: Tenant, make_person: Callable[[], Person]
) -> None:
    product = tenant.product(name=unique("Thermostat"))
    operator, viewer = make_person(), make_person()
    member(tenant, operator, "operator")
    member(tenant, viewer, "viewer")
    into_console(browser, operator)
    browser.get_by_role("navigation", name="Console").get_by_role("link", name="Factory").click()
    browser.get_by_label("Product", exact=True).select_option(product["id"])
    browser.get_by_label(re.compile("^Name")).fill("Line 7")
    browser.get_by_role("button", name="Create an enrollment token").click()
    secret = browser.get_by_test_id("new-token").inner_text().strip()
    assert secret.startswith("lsf_")
    checked(browser)

    unit = enrolled(tenant.http, secret)["device"]
    browser.goto(f"/console/{tenant.organization_id}/factory")
    expect(browser.get_by_test_id("new-token")).to_have_count(0)  # shown once
    row = browser.get_by_test_id("line").locator(f'tr[data-product="{product["id"]}"]')
    expect(row.locator("td").first).to_have_text("1")
    row.locator("td").first.get_by_role("link").click()
    expect(browser.get_by_test_id("devices")).to_contain_text(unit["serial_number"])

    browser.goto(f"/console/{tenant.organization_id}/factory")
    browser.get_by_role("button", name="Revoke Line 7").click()
    expect(browser.get_by_role("status")).to_contain_text("no longer enrolls")
    refused = tenant.http.post(
        f"{API}/factory/duts", json={"enrollment_token": secret, "hardware_id": "AA:BB:CC:00:00:09"}
    )
    assert refused.status_code == 401, refused.text
    checked(browser)

    browser.context.clear_cookies()
    into_console(browser, viewer)
    browser.goto(f"/console/{tenant.organization_id}/factory")
    expect(browser.get_by_test_id("enrollment-tokens")).to_contain_text("revoked")
    expect(browser.get_by_role("button", name="Create an enrollment token")).to_have_count(0)


def test_the_audit_log_filters_pages_and_exports_formula_safe_csv(
    browser: Page, tenant: Tenant, make_person: Callable[[], Person]
) -> None:
    product = tenant.product(name='=HYPERLINK("http://evil")')  # a name a spreadsheet would run
    made = [tenant.device(product["id"])["id"] for _ in range(3)]
    person = make_person()
    member(tenant, person, "viewer")
    into_console(browser, person)
    browser.get_by_role("navigation", name="Console").get_by_role("link", name="Audit log").click()
    browser.get_by_label("Event type").fill("device.defined")
    browser.get_by_role("button", name="Filter").click()
    expect(browser.get_by_test_id("audit").locator("tbody tr")).to_have_count(3)
    browser.get_by_label("Subject id").fill(made[1])
    browser.get_by_role("button", name="Filter").click()
    expect(browser.get_by_test_id("audit").locator("tbody tr")).to_have_count(1)
    checked(browser)

    browser.get_by_label("Event type").fill("")
    browser.get_by_label("Subject id").fill("")
    browser.get_by_role("button", name="Filter").click()
    with browser.expect_download() as download:
        browser.get_by_role("link", name="Export these events (CSV)").click()
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert {row["type"] for row in rows} >= {"product.created", "device.defined"}
    assert sum(row["type"] == "device.defined" for row in rows) == 3
    assert all(not cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row.values())


def test_an_admin_takes_a_device_back_from_its_owner_and_deletes_another_after_being_told_what_breaks(
    browser: Page, tenant: Tenant, make_person: Callable[[], Person], http: httpx.Client
) -> None:
    claimed, spare = boxed_device(tenant), boxed_device(tenant)
    owner = make_person()
    owner.claim(http, claimed)
    admin, operator = make_person(), make_person()
    member(tenant, admin, "admin")
    member(tenant, operator, "operator")

    into_console(browser, admin)
    browser.goto(f"/console/{tenant.organization_id}/devices/{claimed.device_id}")
    browser.get_by_test_id("device-actions").get_by_role("link", name="Take back from its owner").click()
    expect(browser.get_by_role("note")).to_contain_text("leaves its owner's account")
    checked(browser)
    browser.get_by_role("button", name="Disclaim").click()
    expect(browser.get_by_role("status")).to_contain_text("The device was disclaimed")
    assert tenant.get(f"{API}/devices/{claimed.device_id}").json()["owner_organization_id"] is None

    browser.goto(f"/console/{tenant.organization_id}/devices/{spare.device_id}/delete")
    expect(browser.get_by_role("note")).to_contain_text("its QR code will say the device was deleted")
    browser.get_by_role("button", name="Delete for good").click()
    expect(browser.get_by_role("status")).to_contain_text("The device was deleted")
    assert tenant.get(f"{API}/devices/{spare.device_id}").status_code == 404
    assert browser.goto(f"/console/{tenant.organization_id}/devices/{spare.device_id}").status == 404  # type: ignore[union-attr]

    browser.context.clear_cookies()
    into_console(browser, operator)  # an operator runs the line; taking devices away is an admin's
    browser.goto(f"/console/{tenant.organization_id}/devices/{claimed.device_id}")
    expect(browser.get_by_test_id("device-actions")).to_have_count(0)
    browser.goto(f"/console/{tenant.organization_id}/devices/{claimed.device_id}/revoke")
    browser.get_by_role("button", name="Revoke for good").click()
    expect(main(browser)).to_contain_text("Your role here (operator) cannot do this: it takes an admin")
    assert tenant.get(f"{API}/devices/{claimed.device_id}").json()["state"] != "revoked"


def test_an_admin_makes_keys_clients_and_invitations_and_a_viewer_only_looks(
    browser: Page, tenant: Tenant, make_person: Callable[[], Person], http: httpx.Client
) -> None:
    admin, viewer, client_person = make_person(), make_person(), make_person()
    member(tenant, admin, "admin")
    member(tenant, viewer, "viewer")
    into_console(browser, admin)
    browser.get_by_role("navigation", name="Console").get_by_role("link", name="Organization").click()
    expect(browser.get_by_test_id("usage")).to_contain_text("Devices defined")
    expect(browser.get_by_test_id("members")).to_contain_text(f"{admin.email} · admin")
    expect(browser.get_by_test_id("members")).to_contain_text(f"{viewer.email} · viewer")

    browser.get_by_label("Key name").fill("Line 3")
    browser.get_by_label("Scope").select_option("factory")
    browser.get_by_role("button", name="Create an API key").click()
    key = browser.get_by_test_id("secret").inner_text().strip()
    assert http.get(f"{API}/products", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    browser.get_by_role("button", name="Revoke Line 3").click()
    expect(browser.get_by_role("status")).to_contain_text("no longer works")
    assert http.get(f"{API}/products", headers={"Authorization": f"Bearer {key}"}).status_code == 401

    client = unique("Client")
    browser.get_by_label("Client's name").fill(client)
    browser.get_by_role("button", name="Create a client organization").click()
    expect(browser.get_by_test_id("clients")).to_contain_text(client)
    browser.get_by_label("Email").fill(client_person.email)
    browser.get_by_label("Role").select_option("viewer")
    browser.get_by_label("Into").select_option(label=f"{client} (client)")
    browser.get_by_role("button", name="Create an invitation").click()
    code = browser.get_by_test_id("secret").inner_text().strip()
    accepted = http.post(f"{API}/invitations/accept", json={"code": code}, headers=client_person.headers)
    assert accepted.status_code == 200 and accepted.json()["name"] == client
    checked(browser)

    browser.context.clear_cookies()
    into_console(browser, viewer)
    browser.goto(f"/console/{tenant.organization_id}/organization")
    expect(browser.get_by_test_id("clients")).to_contain_text(client)
    for button in ("Create an API key", "Create an invitation", "Create a client organization"):
        expect(browser.get_by_role("button", name=button)).to_have_count(0)
    checked(browser)


def test_an_admin_subscribes_an_endpoint_watches_its_deliveries_sends_one_again_and_turns_it_off(
    browser: Page, tenant: Tenant, make_person: Callable[[], Person]
) -> None:
    admin, viewer = make_person(), make_person()
    member(tenant, admin, "admin")
    member(tenant, viewer, "viewer")
    with Receiver() as receiver:
        into_console(browser, admin)
        browser.get_by_role("navigation", name="Console").get_by_role("link", name="Webhooks").click()
        browser.get_by_label("URL (https)").fill(receiver.url())
        browser.get_by_label("Description").fill("Line monitor")
        browser.get_by_role("button", name="Create the endpoint").click()  # no event chosen
        expect(browser.get_by_role("alert")).to_contain_text("at least one event type")
        expect(browser.get_by_label("Description")).to_have_value("Line monitor")  # the form as it was
        browser.get_by_label("device.defined", exact=True).check()
        browser.get_by_role("button", name="Create the endpoint").click()
        assert browser.get_by_test_id("secret").inner_text().strip().startswith("whsec_")
        checked(browser)

        tenant.device(tenant.product()["id"])
        wait_until(lambda: len(receiver.answered(200)) == 1, "the device.defined webhook")
        browser.goto(f"/console/{tenant.organization_id}/webhooks")
        browser.get_by_test_id("endpoints").get_by_role("link", name="Line monitor").click()
        row = browser.get_by_test_id("deliveries").locator("tbody tr")
        expect(row).to_have_count(1)
        expect(row).to_contain_text("succeeded")
        checked(browser)
        browser.get_by_role("button", name="Send device.defined again").click()
        expect(browser.get_by_role("status")).to_contain_text("goes out again")
        wait_until(lambda: len(receiver.answered(200)) == 2, "the same webhook again")
        first, again = receiver.answered(200)
        assert first.webhook_id == again.webhook_id

        browser.get_by_role("button", name="Turn off").click()
        expect(browser.get_by_test_id("endpoint")).to_contain_text("disabled")

        browser.context.clear_cookies()
        into_console(browser, viewer)
        browser.goto(f"/console/{tenant.organization_id}/webhooks")
        expect(browser.get_by_role("button", name="Create the endpoint")).to_have_count(0)
        browser.get_by_test_id("endpoints").get_by_role("link", name="Line monitor").click()
        expect(browser.get_by_role("button", name="Turn on")).to_have_count(0)
