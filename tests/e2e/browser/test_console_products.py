"""The console's product page (issue 15, item 2): a product's facts; an admin renames it,
changes its metadata fields (a change its devices refuse is an alert with the form kept) and
whether its units need blessing, makes device groups (pre-production too) and sets a production
group to load application firmware after activation (Electric Imp's setting for factory
activation); the provisioning
secret is shown once and works, a new one stops the old, and disabling stops both; a viewer
sees the page without forms; another organization's product is a 404 page. At phone and
desktop widths, with axe-core."""

from __future__ import annotations

import re
from collections.abc import Callable

from playwright.sync_api import Page, expect

from lineside.bootstrap import Application
from tests.e2e.browser.claim_page import main
from tests.e2e.browser.console import checked, into_console, member
from tests.e2e.browser.owners import Person
from tests.support.api import Tenant, ok, unique
from tests.support.provisioning import ask, failed, succeeded

API = "/api/v1"


def product_path(tenant: Tenant, product: dict[str, str]) -> str:
    return f"/console/{tenant.organization_id}/products/{product['id']}"


def test_an_admin_opens_a_product_from_the_list_and_makes_its_units_wait_for_blessing(
    browser: Page, tenant: Tenant, make_person: Callable[[], Person]
) -> None:
    product = tenant.product(
        name=unique("Kettle"), fields=[{"name": "colour", "type": "string", "required": True}]
    )
    admin = make_person()
    member(tenant, admin, "admin")
    into_console(browser, admin)
    browser.get_by_role("navigation", name="Console").get_by_role("link", name="Products").click()
    browser.get_by_test_id("products").get_by_role("link", name=product["name"]).click()
    expect(browser).to_have_url(re.compile(f"/products/{product['id']}$"))
    facts = browser.get_by_test_id("facts")
    expect(facts).to_contain_text(product["id"])
    expect(facts).to_contain_text("colour (string, required)")
    expect(facts).to_contain_text("any unit (defined on enrollment)")
    expect(browser.get_by_test_id("activation")).to_have_text("on first connection, blessed or not")
    checked(browser)

    browser.get_by_label("Units activate only after blessing").check()
    browser.get_by_role("button", name="Save settings").click()
    expect(browser.get_by_role("status")).to_contain_text("Product settings saved")
    expect(browser.get_by_test_id("activation")).to_have_text("only after blessing on the factory line")
    expect(browser.get_by_label("Units activate only after blessing")).to_be_checked()
    assert ok(tenant.get(f"{API}/products/{product['id']}"))["requires_blessing"] is True

    browser.get_by_label("Units activate only after blessing").uncheck()
    browser.get_by_role("button", name="Save settings").click()
    expect(browser.get_by_role("status")).to_contain_text("Product settings saved")
    assert ok(tenant.get(f"{API}/products/{product['id']}"))["requires_blessing"] is False
    checked(browser)


def test_an_admin_renames_a_product_with_devices_and_adds_an_optional_field(
    browser: Page, tenant: Tenant, make_person: Callable[[], Person]
) -> None:
    product = tenant.product(
        name=unique("Kettle"), fields=[{"name": "colour", "type": "string", "required": True}]
    )
    tenant.device(product["id"], metadata={"colour": "red"})
    admin = make_person()
    member(tenant, admin, "admin")
    into_console(browser, admin)
    browser.goto(product_path(tenant, product))
    expect(browser.get_by_label("Product name")).to_have_value(product["name"])
    expect(browser.get_by_label("Metadata fields")).to_have_value("colour: string required\n")

    renamed = unique("Kettle Pro")
    browser.get_by_label("Product name").fill(renamed)
    browser.get_by_label("Metadata fields").fill("colour: string required\nvolume: number")
    browser.get_by_role("button", name="Save settings").click()
    expect(browser.get_by_role("status")).to_contain_text("Product settings saved")
    expect(browser.get_by_role("heading", level=1)).to_have_text(renamed)
    expect(browser.get_by_test_id("facts")).to_contain_text("colour (string, required), volume (number)")
    changed = ok(tenant.get(f"{API}/products/{product['id']}"))
    assert changed["name"] == renamed
    assert changed["metadata_fields"] == [
        {"name": "colour", "type": "string", "required": True},
        {"name": "volume", "type": "number", "required": False},
    ]
    checked(browser)


def test_a_required_field_on_a_product_with_devices_is_refused_beside_the_kept_form(
    browser: Page, tenant: Tenant, make_person: Callable[[], Person]
) -> None:
    product = tenant.product(name=unique("Toaster"), fields=[{"name": "colour", "type": "string"}])
    tenant.device(product["id"])
    admin = make_person()
    member(tenant, admin, "admin")
    into_console(browser, admin)
    browser.goto(product_path(tenant, product))

    typed = "colour: string\nbatch: integer required"
    browser.get_by_label("Product name").fill("Toaster 2")
    browser.get_by_label("Metadata fields").fill(typed)
    browser.get_by_role("button", name="Save settings").click()
    alert = browser.get_by_role("alert")
    expect(alert).to_contain_text("The product has 1 device")
    expect(alert).to_contain_text("a new field 'batch' must be optional")
    expect(browser.get_by_label("Product name")).to_have_value("Toaster 2")
    expect(browser.get_by_label("Metadata fields")).to_have_value(typed)
    assert ok(tenant.get(f"{API}/products/{product['id']}")) == product
    checked(browser)

    browser.get_by_label("Metadata fields").fill("colour: text")  # not a type: the parser says so
    browser.get_by_role("button", name="Save settings").click()
    expect(browser.get_by_role("alert")).to_contain_text("Metadata field line 1 should read")
    expect(browser.get_by_label("Metadata fields")).to_have_value("colour: text")


def test_an_admin_makes_a_pre_production_group_that_waits_for_activation(
    browser: Page, tenant: Tenant, make_person: Callable[[], Person]
) -> None:
    product = tenant.product(name=unique("Heater"))
    admin = make_person()
    member(tenant, admin, "admin")
    into_console(browser, admin)
    browser.goto(product_path(tenant, product))

    browser.get_by_label("Group name").fill("Trial fleet")
    browser.get_by_label("Kind").select_option(label="pre-production")
    browser.get_by_role("button", name="Create device group").click()
    expect(browser.get_by_role("status")).to_contain_text("Device group created")
    [made] = ok(tenant.get(f"{API}/products/{product['id']}/groups"))
    assert (made["name"], made["kind"]) == ("Trial fleet", "pre_production")
    trial = browser.locator(f'[data-group="{made["id"]}"]')
    expect(trial).to_contain_text("pre-production group")
    trial.get_by_label(re.compile("load application firmware")).select_option("activation")
    trial.get_by_role("button", name=re.compile("Save the firmware setting")).click()
    expect(browser.get_by_role("status")).to_contain_text("firmware setting is saved")
    assert ok(tenant.get(f"{API}/device-groups/{made['id']}"))["application_firmware_after"] == "activation"
    checked(browser)


def test_an_admin_makes_a_production_group_that_loads_application_firmware_after_activation(
    browser: Page, tenant: Tenant, make_person: Callable[[], Person]
) -> None:
    product = tenant.product(name=unique("Lamp"))
    admin = make_person()
    member(tenant, admin, "admin")
    into_console(browser, admin)
    browser.goto(product_path(tenant, product))
    expect(main(browser)).to_contain_text("No device group yet")

    for name, kind in (("Production EU", "production"), ("Line A", "factory")):
        browser.get_by_label("Group name").fill(name)
        browser.get_by_label("Kind").select_option(kind)
        browser.get_by_role("button", name="Create device group").click()
        expect(browser.get_by_role("status")).to_contain_text("Device group created")
    groups = {group["name"]: group for group in ok(tenant.get(f"{API}/products/{product['id']}/groups"))}
    assert {name: group["kind"] for name, group in groups.items()} == {
        "Production EU": "production",
        "Line A": "factory",
    }

    production = browser.locator(f'[data-group="{groups["Production EU"]["id"]}"]')
    expect(production.get_by_test_id("firmware-after")).to_have_text("blessing")
    production.get_by_label(re.compile("load application firmware")).select_option("activation")
    production.get_by_role("button", name=re.compile("Save the firmware setting")).click()
    expect(browser.get_by_role("status")).to_contain_text("firmware setting is saved")
    expect(production.get_by_test_id("firmware-after")).to_have_text("activation")
    group = ok(tenant.get(f"{API}/device-groups/{groups['Production EU']['id']}"))
    assert group["application_firmware_after"] == "activation"
    checked(browser)

    # The service's refusals are alerts beside the form, which keeps what was chosen.
    line = browser.locator(f'[data-group="{groups["Line A"]["id"]}"]')
    line.get_by_label(re.compile("load application firmware")).select_option("activation")
    line.get_by_role("button", name=re.compile("Save the firmware setting")).click()
    expect(browser.get_by_role("alert")).to_contain_text(
        "Only a production or pre-production group can wait for activation"
    )
    expect(line.get_by_label(re.compile("load application firmware"))).to_have_value("activation")
    assert ok(tenant.get(f"{API}/device-groups/{groups['Line A']['id']}"))["application_firmware_after"] == (
        "blessing"
    )
    browser.get_by_label("Group name").fill("Production EU")
    browser.get_by_label("Kind").select_option("development")
    browser.get_by_role("button", name="Create device group").click()
    expect(browser.get_by_role("alert")).to_contain_text("already has a device group named 'Production EU'")
    expect(browser.get_by_label("Group name")).to_have_value("Production EU")
    expect(browser.get_by_label("Kind")).to_have_value("development")
    checked(browser)


def test_the_provisioning_secret_is_shown_once_works_and_stops_when_replaced_or_disabled(
    browser: Page, tenant: Tenant, make_person: Callable[[], Person], application: Application
) -> None:
    product = tenant.product(name=unique("Plug"))
    operator = make_person()
    member(tenant, operator, "operator")  # the factory scope the service asks for
    into_console(browser, operator)
    here = product_path(tenant, product)
    browser.goto(here)
    expect(browser.get_by_test_id("provisioning")).to_contain_text("disabled")
    expect(browser.get_by_role("button", name="Save settings")).to_have_count(0)  # an admin's

    browser.get_by_role("button", name="Enable provisioning").click()
    issued = browser.get_by_test_id("issued")
    expect(issued).to_contain_text("it will not be shown again")
    expect(issued.get_by_role("button", name="Copy")).to_be_visible()  # unhidden by the script
    secret = browser.get_by_test_id("secret").inner_text().strip()
    key = browser.get_by_test_id("provision-key").inner_text().strip()
    assert secret.startswith("lsp_") and key.startswith("lpk_")
    checked(browser)

    browser.goto(here)
    expect(browser.get_by_test_id("provisioning")).to_contain_text("enabled")
    expect(browser.get_by_test_id("secret")).to_have_count(0)
    assert secret not in browser.content()
    first = {"provision_key": key, "provision_secret": secret}
    assert succeeded(ask(application, first, deviceName=unique("SN")))["credentialsValue"].startswith("lsd_")

    browser.get_by_role("button", name="Issue a new secret").click()
    renewed = browser.get_by_test_id("secret").inner_text().strip()
    assert renewed != secret
    assert browser.get_by_test_id("provision-key").inner_text().strip() == key  # the key stays
    failed(ask(application, first, deviceName=unique("SN")))
    second = {"provision_key": key, "provision_secret": renewed}
    succeeded(ask(application, second, deviceName=unique("SN")))

    browser.get_by_role("button", name="Disable provisioning").click()
    expect(browser.get_by_role("status")).to_contain_text("Provisioning is disabled")
    expect(browser.get_by_role("button", name="Enable provisioning")).to_be_visible()
    assert ok(tenant.get(f"{API}/products/{product['id']}/provisioning"))["enabled"] is False
    failed(ask(application, second, deviceName=unique("SN")))
    checked(browser)


def test_a_form_without_its_csrf_token_changes_nothing(
    browser: Page, tenant: Tenant, make_person: Callable[[], Person]
) -> None:
    product = tenant.product(name=unique("Fan"))
    admin = make_person()
    member(tenant, admin, "admin")
    into_console(browser, admin)
    here = product_path(tenant, product)
    for path, form in (
        ("", {"requires_blessing": "1"}),
        ("/groups", {"name": "Production", "kind": "production"}),
        ("/provisioning", {}),
    ):
        answer = browser.request.post(here + path, form={**form, "csrf": "forged"}, max_redirects=0)
        assert answer.status == 403, path
        assert "The form expired" in answer.text()
    assert ok(tenant.get(f"{API}/products/{product['id']}"))["requires_blessing"] is False
    assert ok(tenant.get(f"{API}/products/{product['id']}/groups")) == []
    assert ok(tenant.get(f"{API}/products/{product['id']}/provisioning"))["enabled"] is False


def test_a_viewer_sees_the_product_without_forms_and_is_refused_a_posted_one(
    browser: Page, tenant: Tenant, make_person: Callable[[], Person]
) -> None:
    product = tenant.product(name=unique("Heater"))
    tenant.created(f"{API}/products/{product['id']}/groups", {"name": "Production", "kind": "production"})
    tenant.created(f"{API}/products/{product['id']}/provisioning", {})
    viewer = make_person()
    member(tenant, viewer, "viewer")
    into_console(browser, viewer)
    here = product_path(tenant, product)
    browser.goto(here)
    expect(browser.get_by_test_id("facts")).to_contain_text(product["id"])
    expect(browser.get_by_test_id("groups")).to_contain_text("Production")
    expect(browser.get_by_test_id("provisioning")).to_contain_text("enabled")
    expect(main(browser)).to_contain_text("Your role (viewer) can look at the product")
    expect(main(browser).locator("form")).to_have_count(0)
    checked(browser)

    cookies = {cookie["name"]: cookie["value"] for cookie in browser.context.cookies()}
    answer = browser.request.post(
        here + "/provisioning", form={"csrf": cookies["lineside_csrf"]}, max_redirects=0
    )
    assert answer.status == 403
    assert "lsp_" not in answer.text()


def test_another_organizations_product_is_a_404_page(
    browser: Page, tenant: Tenant, make_tenant: Callable[[], Tenant], make_person: Callable[[], Person]
) -> None:
    other = make_tenant()
    theirs = other.product(name=unique("Theirs"))
    admin = make_person()
    member(tenant, admin, "admin")
    into_console(browser, admin)
    mine = f"/console/{tenant.organization_id}/products"
    for path in (f"{mine}/{theirs['id']}", f"{mine}/not-a-product"):
        opened = browser.goto(path)
        assert opened is not None and opened.status == 404, path
        expect(main(browser)).to_contain_text("Not found")
    checked(browser)
    cookies = {cookie["name"]: cookie["value"] for cookie in browser.context.cookies()}
    answer = browser.request.post(
        f"{mine}/{theirs['id']}/provisioning", form={"csrf": cookies["lineside_csrf"]}, max_redirects=0
    )
    assert answer.status == 404
    assert ok(other.get(f"{API}/products/{theirs['id']}/provisioning"))["enabled"] is False
