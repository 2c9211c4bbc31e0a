"""The console's firmware page (issue 15, item 6): an admin uploads a release from a file and
deploys it to a device group, a refused upload or deployment says why and keeps the form, a
viewer sees the releases without the forms, another organization's product is a 404 page,
and each released version links to the devices that report running it. At phone and
desktop widths, with axe-core on every page."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from playwright.sync_api import Locator, Page, expect

from tests.e2e.browser.claim_page import main
from tests.e2e.browser.console import checked, into_console, member
from tests.e2e.browser.owners import Person
from tests.support.api import Tenant, unique
from tests.support.firmware import API, as_device, group, image_bytes, release


def firmware_page(page: Page, tenant: Tenant, product_id: str) -> None:
    page.goto(f"/console/{tenant.organization_id}/firmware?product={product_id}")


def group_card(page: Page, group_id: str) -> Locator:
    return page.locator(f'[data-group="{group_id}"]')


def upload_form(page: Page) -> Locator:
    return page.locator("form", has=page.get_by_role("button", name="Upload release"))


def reporting(tenant: Tenant, product_id: str, version: str) -> None:
    """A device of the product that reports running ``version``."""
    token = tenant.token(tenant.device(product_id)["id"])
    reported = as_device(tenant.http, token, "POST", "/device/v1/firmware", json={"version": version})
    assert reported.status_code == 200, reported.text


def releases_of(tenant: Tenant, product_id: str) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = tenant.get(f"{API}/products/{product_id}/firmware-releases").json()
    return listed


def test_an_admin_uploads_a_release_and_deploys_it_to_a_group(
    browser: Page, tenant: Tenant, make_person: Callable[[], Person]
) -> None:
    product = tenant.product(name=unique("Thermostat"))
    tenant.product(name=unique("Other"))  # so the chooser has a choice to make
    development = group(tenant, product["id"], "development")
    admin = make_person()
    member(tenant, admin, "admin")
    into_console(browser, admin)
    browser.get_by_role("navigation", name="Console").get_by_role("link", name="Firmware").click()
    browser.get_by_label("Product", exact=True).select_option(product["id"])
    browser.get_by_role("button", name="Show").click()
    expect(main(browser)).to_contain_text(f"Releases of {product['name']}")
    expect(main(browser)).to_contain_text("No release yet.")
    checked(browser)

    version = unique("2.1.")
    form = upload_form(browser)
    form.get_by_label("Image file").set_input_files(
        {"name": "thermostat.bin", "mimeType": "application/octet-stream", "buffer": image_bytes(1234)}
    )
    form.get_by_label("Version").fill(version)
    form.get_by_label("Kind").select_option("application")
    form.get_by_label("Release notes").fill("Quieter relay")
    form.get_by_role("button", name="Upload release").click()
    expect(browser.get_by_role("status")).to_contain_text("The release was uploaded")
    row = browser.get_by_test_id("releases").locator("tbody tr").first
    for text in (version, "application", "1,234 bytes", "Quieter relay"):
        expect(row).to_contain_text(text)
    checked(browser)
    uploaded = releases_of(tenant, product["id"])
    assert [(r["version"], r["size_bytes"]) for r in uploaded] == [(version, 1234)]

    card = group_card(browser, development["id"])
    expect(card.get_by_test_id("deployed")).to_have_text("nothing yet")
    card.get_by_label(re.compile("Release to deploy")).select_option(uploaded[0]["id"])
    card.get_by_role("button", name="Deploy").click()
    expect(browser.get_by_role("status")).to_contain_text("The release was deployed")
    expect(group_card(browser, development["id"]).get_by_test_id("deployed")).to_have_text(version)
    checked(browser)
    deployments = tenant.get(f"{API}/device-groups/{development['id']}/deployments").json()
    assert [d["release_id"] for d in deployments] == [uploaded[0]["id"]]
    assert tenant.get(f"{API}/device-groups/{development['id']}").json()["release_id"] == uploaded[0]["id"]


def test_a_refused_upload_or_deployment_says_why_and_keeps_the_form(
    browser: Page, tenant: Tenant, make_person: Callable[[], Person]
) -> None:
    product = tenant.product(name=unique("Kettle"))
    taken = release(tenant, product["id"], kind="application", version=unique("3.0."))
    factory = release(tenant, product["id"], kind="factory", version=unique("line-"))
    development = group(tenant, product["id"], "development")
    admin = make_person()
    member(tenant, admin, "admin")
    into_console(browser, admin)
    firmware_page(browser, tenant, product["id"])

    form = upload_form(browser)
    form.get_by_label("Image file").set_input_files(
        {"name": "again.bin", "mimeType": "application/octet-stream", "buffer": image_bytes(64)}
    )
    form.get_by_label("Version").fill(taken["version"])
    form.get_by_label("Kind").select_option("application")
    form.get_by_label("Release notes").fill("the same version again")
    form.get_by_role("button", name="Upload release").click()
    expect(browser.get_by_role("alert")).to_contain_text(f"version '{taken['version']}'")
    form = upload_form(browser)
    expect(form.get_by_label("Version")).to_have_value(taken["version"])
    expect(form.get_by_label("Release notes")).to_have_value("the same version again")
    checked(browser)
    assert len(releases_of(tenant, product["id"])) == 2

    card = group_card(browser, development["id"])
    card.get_by_label(re.compile("Release to deploy")).select_option(factory["id"])
    card.get_by_role("button", name="Deploy").click()
    expect(browser.get_by_role("alert")).to_contain_text("deploys only to factory groups")
    chosen = group_card(browser, development["id"]).get_by_label(re.compile("Release to deploy"))
    expect(chosen).to_have_value(factory["id"])
    checked(browser)
    assert tenant.get(f"{API}/device-groups/{development['id']}/deployments").json() == []


def test_a_viewer_sees_the_releases_and_no_forms(
    browser: Page, tenant: Tenant, make_person: Callable[[], Person]
) -> None:
    product = tenant.product(name=unique("Lamp"))
    shipped = release(tenant, product["id"], kind="application", version=unique("1.0."))
    production = group(tenant, product["id"], "production")
    viewer = make_person()
    member(tenant, viewer, "viewer")
    into_console(browser, viewer)
    firmware_page(browser, tenant, product["id"])
    expect(browser.get_by_test_id("releases")).to_contain_text(shipped["version"])
    expect(group_card(browser, production["id"])).to_contain_text("production group")
    expect(browser.get_by_role("button", name="Upload release")).to_have_count(0)
    expect(browser.get_by_role("button", name="Deploy")).to_have_count(0)
    expect(browser.locator('form[method="post"][enctype]')).to_have_count(0)
    checked(browser)


def test_another_organizations_product_and_forged_forms_are_refused(
    browser: Page, tenant: Tenant, make_tenant: Callable[[], Tenant], make_person: Callable[[], Person]
) -> None:
    other = make_tenant()
    theirs = other.product(name=unique("Secret"))
    hidden = release(other, theirs["id"], version=unique("9.9."))
    their_group = group(other, theirs["id"], "development")
    mine = tenant.product(name=unique("Mine"))
    my_release = release(tenant, mine["id"])
    my_group = group(tenant, mine["id"], "development")
    admin = make_person()
    member(tenant, admin, "admin")
    into_console(browser, admin)

    opened = browser.goto(f"/console/{tenant.organization_id}/firmware?product={theirs['id']}")
    assert opened is not None and opened.status == 404
    expect(main(browser)).not_to_contain_text(hidden["version"])
    checked(browser)

    path = f"/console/{tenant.organization_id}/firmware/groups"
    firmware_page(browser, tenant, mine["id"])  # sets the CSRF cookie a real form would send back
    forged = browser.request.post(
        f"{path}/{my_group['id']}/deployments",
        form={"release": my_release["id"], "product": mine["id"], "csrf": "forged"},
    )
    assert forged.status == 403 and "The form expired" in forged.text()
    assert tenant.get(f"{API}/device-groups/{my_group['id']}/deployments").json() == []
    assert other.get(f"{API}/device-groups/{their_group['id']}/deployments").json() == []


def test_each_version_links_to_the_devices_that_report_running_it(
    browser: Page, tenant: Tenant, make_person: Callable[[], Person]
) -> None:
    product = tenant.product(name=unique("Meter"))
    old = release(tenant, product["id"], version=unique("1.0."))
    new = release(tenant, product["id"], version=unique("1.1."))
    for _ in range(2):
        reporting(tenant, product["id"], old["version"])
    reporting(tenant, product["id"], new["version"])
    viewer = make_person()
    member(tenant, viewer, "viewer")
    into_console(browser, viewer)
    firmware_page(browser, tenant, product["id"])
    in_use = browser.get_by_test_id("in-use")
    expect(in_use.locator("tbody tr")).to_have_count(2)
    expect(in_use.locator("tr", has_text=old["version"]).locator("td.number")).to_have_text("2")
    expect(in_use.locator("tr", has_text=new["version"]).locator("td.number")).to_have_text("1")
    checked(browser)

    in_use.get_by_role("link", name=f"Devices running {old['version']}").click()
    expect(browser).to_have_url(re.compile(rf"/console/{tenant.organization_id}/devices\?"))
    query = parse_qs(urlsplit(browser.url).query)
    assert query == {"product": [product["id"]], "firmware": [old["version"]]}
    expect(browser.get_by_test_id("devices").locator("tbody tr")).to_have_count(2)
