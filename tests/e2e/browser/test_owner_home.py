"""The owner's home (issue 12): sign in without a QR code, see one's devices with their online
indicator and last seen, open one, remove it after a confirmation, hand it to another person
by a link, change the password, sign out; the claim page says what claiming does, who made the
device, and lets someone else sign in ("not you?"). At phone and desktop widths, with axe-core
finding no serious or critical violation on any page."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.e2e.browser.accessibility import serious_violations
from tests.e2e.browser.claim_page import claim_button, fits_the_phone, main, sign_in
from tests.e2e.browser.owners import (
    BoxedDevice,
    Person,
    api_headers,
    boxed_device,
    owned_devices,
    personal_organization,
)
from tests.support.api import Tenant
from tests.support.mqtt import mqtt_client, wait_for

pytestmark = pytest.mark.browser

WIDTHS = ["phone", "desktop"]


@pytest.fixture(params=WIDTHS)
def make_browser(
    request: pytest.FixtureRequest, make_phone: Callable[[], Page], make_desktop: Callable[[], Page]
) -> Iterator[Callable[[], Page]]:
    yield make_phone if request.param == "phone" else make_desktop


@pytest.fixture
def browser(make_browser: Callable[[], Page]) -> Page:
    return make_browser()


def accessible_and_fitting(page: Page) -> None:
    assert serious_violations(page) == []
    assert fits_the_phone(page)  # no sideways scrolling at this width either


def signed_in_at_home(page: Page, person: Person) -> None:
    """Sign in from the standalone page, as someone who never scanned a label here."""
    page.goto("/")
    page.get_by_role("link", name="Sign in").first.click()
    expect(page).to_have_url(re.compile(r"/signin"))
    sign_in(page, person.email, person.password)
    expect(page).to_have_url(re.compile(r"/account$"))
    expect(main(page)).to_contain_text(f"Signed in as {person.email}")


def device_row(page: Page, device: BoxedDevice) -> None:
    expect(page.get_by_test_id("devices")).to_contain_text(device.serial_number)


def test_the_landing_page_links_the_docs_and_the_owner_pages(browser: Page) -> None:
    opened = browser.goto("/")
    assert opened is not None and opened.status == 200
    expect(browser.get_by_role("link", name="API reference")).to_have_attribute("href", "/docs")
    expect(browser.get_by_role("link", name="Sign in").first).to_be_visible()
    accessible_and_fitting(browser)
    assert browser.goto("/docs") is not None


def test_an_owner_signs_in_sees_devices_online_and_last_seen_and_opens_one(
    browser: Page,
    tenant: Tenant,
    make_person: Callable[[], Person],
    http: httpx.Client,
    mqtt_port: int,
) -> None:
    owner = make_person()
    quiet, connected = boxed_device(tenant), boxed_device(tenant)
    owner.claim(http, quiet)
    owner.claim(http, connected)
    token = tenant.token(connected.device_id)

    with mqtt_client("127.0.0.1", mqtt_port, connected.device_id, password=token) as device:
        assert device.connack_rc == 0
        wait_for(lambda: is_online(tenant, connected.device_id), what="the device to show online")
        signed_in_at_home(browser, owner)
        accessible_and_fitting(browser)
        rows = browser.get_by_test_id("devices").get_by_role("listitem")
        online_row = rows.filter(has_text=connected.serial_number)
        expect(online_row.get_by_test_id("presence")).to_have_text("Online")
        expect(online_row.get_by_test_id("last-seen")).to_contain_text("last seen")
        quiet_row = rows.filter(has_text=quiet.serial_number)
        expect(quiet_row.get_by_test_id("presence")).to_have_text("Offline")
        expect(quiet_row.get_by_test_id("last-seen")).to_have_text("never connected yet")

    online_row.get_by_role("link", name=connected.product_name).click()
    expect(browser).to_have_url(re.compile(f"/account/devices/{connected.device_id}$"))
    expect(browser.get_by_test_id("serial")).to_have_text(connected.serial_number)
    expect(browser.get_by_test_id("maker")).not_to_be_empty()
    accessible_and_fitting(browser)


def is_online(tenant: Tenant, device_id: str) -> bool:
    return bool(tenant.get(f"/api/v1/devices/{device_id}").json()["online"])


def test_removing_a_device_asks_first_then_the_device_leaves_the_account(
    browser: Page, boxed: BoxedDevice, make_person: Callable[[], Person], http: httpx.Client, tenant: Tenant
) -> None:
    owner = make_person()
    owner.claim(http, boxed)
    signed_in_at_home(browser, owner)
    browser.get_by_role("link", name=boxed.product_name).click()
    browser.get_by_role("link", name="Remove this device…").click()

    expect(browser.get_by_test_id("confirm-unclaim")).to_contain_text("Remove this device from your account?")
    accessible_and_fitting(browser)
    assert len(owned_devices(http, owner.headers)) == 1  # asking changed nothing
    browser.get_by_role("link", name="No, keep it").click()
    expect(browser.get_by_role("button", name="Yes, remove it")).to_have_count(0)
    assert len(owned_devices(http, owner.headers)) == 1

    browser.get_by_role("link", name="Remove this device…").click()
    browser.get_by_role("button", name="Yes, remove it").click()
    expect(browser).to_have_url(re.compile(r"/account\?done="))
    expect(browser.get_by_role("status")).to_have_text(f"{boxed.serial_number} is no longer in your account.")
    assert owned_devices(http, owner.headers) == []
    assert tenant.get(f"/api/v1/devices/{boxed.device_id}").json()["owner_organization_id"] is None


def test_an_owner_transfers_a_device_and_the_receiver_accepts_by_the_link(
    make_browser: Callable[[], Page],
    boxed: BoxedDevice,
    make_person: Callable[[], Person],
    http: httpx.Client,
) -> None:
    giver, receiver = make_person(), make_person()
    giver.claim(http, boxed)
    givers_browser, receivers_browser = make_browser(), make_browser()
    signed_in_at_home(givers_browser, giver)
    givers_browser.get_by_role("link", name=boxed.product_name).click()
    givers_browser.get_by_role("button", name="Transfer to another person").click()
    link = givers_browser.get_by_test_id("transfer-link").inner_text().strip()
    expect(givers_browser.get_by_role("alert")).to_contain_text("Anyone with this link can take the device")
    accessible_and_fitting(givers_browser)
    assert "/transfer/lst_" in link

    receivers_browser.goto(httpx.URL(link).path)  # the public URL names another host in tests
    expect(receivers_browser.get_by_test_id("serial")).to_have_text(boxed.serial_number)
    accessible_and_fitting(receivers_browser)
    sign_in(receivers_browser, receiver.email, receiver.password)
    receivers_browser.get_by_role("button", name="Accept the device").click()
    expect(receivers_browser.get_by_role("status")).to_have_text(
        f"{boxed.serial_number} was transferred to you."
    )
    device_row(receivers_browser, boxed)

    [owned] = owned_devices(http, receiver.headers)
    assert owned["owner_organization_id"] == personal_organization(http, receiver.headers)
    assert owned_devices(http, giver.headers) == []
    givers_browser.goto("/account")
    expect(givers_browser.get_by_test_id("devices")).to_have_count(0)


def test_a_pending_transfer_can_be_cancelled_and_its_link_then_says_so(
    make_browser: Callable[[], Page],
    boxed: BoxedDevice,
    make_person: Callable[[], Person],
    http: httpx.Client,
) -> None:
    giver = make_person()
    giver.claim(http, boxed)
    givers_browser, strangers_browser = make_browser(), make_browser()
    signed_in_at_home(givers_browser, giver)
    givers_browser.get_by_role("link", name=boxed.product_name).click()
    givers_browser.get_by_role("button", name="Transfer to another person").click()
    code = givers_browser.get_by_test_id("transfer-code").inner_text().strip()

    # The code is shown once; coming back, the page says an offer is open.
    givers_browser.goto(f"/account/devices/{boxed.device_id}")
    expect(givers_browser.get_by_test_id("transfer-pending")).to_contain_text("Offered to someone else")
    expect(givers_browser.get_by_test_id("transfer-code")).to_have_count(0)
    givers_browser.get_by_role("button", name="Cancel the transfer").click()
    expect(givers_browser.get_by_test_id("transfer-pending")).to_have_count(0)

    strangers_browser.goto("/signin")
    stranger = make_person()
    sign_in(strangers_browser, stranger.email, stranger.password)
    strangers_browser.get_by_label("Transfer code").fill(code)
    strangers_browser.get_by_role("button", name="Continue").click()
    expect(main(strangers_browser)).to_contain_text("This link is cancelled")
    expect(strangers_browser.get_by_role("button", name="Accept the device")).to_have_count(0)
    assert len(owned_devices(http, giver.headers)) == 1


def test_changing_the_password_keeps_this_browser_and_ends_the_other_sign_ins(
    browser: Page, make_person: Callable[[], Person], http: httpx.Client
) -> None:
    person = make_person()
    signed_in_at_home(browser, person)
    browser.get_by_role("link", name="Password").click()
    accessible_and_fitting(browser)
    browser.get_by_label("Current password").fill(person.password)
    browser.get_by_label("New password").fill("another long passphrase")
    browser.get_by_role("button", name="Change password").click()

    expect(browser.get_by_role("status")).to_contain_text("Your password was changed")
    assert http.get("/api/v1/me", headers=person.headers).status_code == 401  # signed in elsewhere
    assert api_headers(http, person.email, "another long passphrase")

    browser.get_by_role("button", name="Sign out").click()
    expect(browser).to_have_url(re.compile(r"/signin$"))
    browser.goto("/account")
    expect(browser).to_have_url(re.compile(r"/signin\?next=/account$"))


def test_a_wrong_current_password_is_told_on_the_page(
    browser: Page, make_person: Callable[[], Person]
) -> None:
    person = make_person()
    signed_in_at_home(browser, person)
    browser.goto("/account/password")
    browser.get_by_label("Current password").fill("not the one")
    browser.get_by_label("New password").fill("another long passphrase")
    with browser.expect_response(lambda response: response.request.method == "POST") as answer:
        browser.get_by_role("button", name="Change password").click()
    assert answer.value.status == 401
    expect(browser.get_by_role("alert")).to_have_text("The current password is wrong.")


def test_another_persons_device_page_is_not_found_and_signing_in_returns_to_the_page_asked_for(
    browser: Page, boxed: BoxedDevice, make_person: Callable[[], Person], http: httpx.Client
) -> None:
    owner, other = make_person(), make_person()
    owner.claim(http, boxed)
    device_page = f"/account/devices/{boxed.device_id}"
    browser.goto(device_page)
    expect(browser).to_have_url(re.compile(r"/signin\?next="))
    sign_in(browser, other.email, other.password)

    expect(browser).to_have_url(re.compile(f"{device_page}$"))
    expect(main(browser)).to_contain_text("Not one of your devices")
    expect(browser.get_by_test_id("serial")).to_have_count(0)
    form_token = browser.locator("input[name=csrf]").first.input_value()  # a real one, of this page
    for action in ("unclaim", "transfer", "transfer/cancel"):
        refused = browser.request.post(f"{device_page}/{action}", form={"csrf": form_token})
        assert refused.status == 404, action
    assert len(owned_devices(http, owner.headers)) == 1


def test_the_claim_page_explains_claiming_names_the_maker_and_lets_someone_else_sign_in(
    browser: Page, boxed: BoxedDevice, make_person: Callable[[], Person], tenant: Tenant
) -> None:
    parent, child = make_person(), make_person()
    browser.goto(boxed.claim_path)
    explanation = browser.get_by_test_id("what-claiming-does")
    explanation.get_by_text("What does claiming do?").click()
    expect(explanation).to_contain_text("adds this device to your account")
    maker = tenant.get(f"/api/v1/organizations/{tenant.organization_id}").json()["name"]
    expect(browser.get_by_test_id("maker")).to_have_text(maker)
    accessible_and_fitting(browser)

    sign_in(browser, parent.email, parent.password)
    expect(main(browser)).to_contain_text(f"Signed in as {parent.email}")
    browser.get_by_role("button", name="Sign out and use another account").click()
    expect(browser).to_have_url(re.compile(f"{boxed.claim_path}$"))
    sign_in(browser, child.email, child.password)
    claim_button(browser).click()
    expect(browser.get_by_test_id("devices")).to_contain_text(boxed.serial_number)
    assert owned_devices(tenant.http, parent.headers) == []


def test_the_accessibility_check_finds_what_it_should_on_our_pages(browser: Page) -> None:
    """The check runs under the pages' Content-Security-Policy and sees real problems: an
    unlabelled field and grey-on-white text, put on the landing page, are reported."""
    browser.goto("/")
    browser.evaluate(
        """() => {
            document.querySelector("main").insertAdjacentHTML("beforeend",
                '<input type="text"><p style="color:#bbb;background:#fff">faint</p>');
        }"""
    )
    found = " ".join(serious_violations(browser))
    assert "label (critical)" in found
    assert "color-contrast (serious)" in found
