"""A person scans the QR label on a device's box, signs up or in, and claims the device."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.e2e.browser.claim_page import claim_button, fits_the_phone, main, sign_in, sign_up
from tests.e2e.browser.owners import (
    PASSWORD,
    BoxedDevice,
    Person,
    api_headers,
    new_email,
    owned_devices,
    personal_organization,
)
from tests.support.api import Tenant

pytestmark = pytest.mark.browser

SESSION_COOKIE = "lineside_session"
ACCOUNT_AFTER_CLAIM = re.compile(r"/account\?claimed=")


def open_label(phone: Page, device: BoxedDevice) -> None:
    opened = phone.goto(device.claim_path)
    assert opened is not None and opened.status == 200
    expect(phone.get_by_test_id("product")).to_have_text(device.product_name)
    expect(phone.get_by_test_id("serial")).to_have_text(device.serial_number)


def claim_and_see_it_listed(phone: Page, device: BoxedDevice) -> None:
    claim_button(phone).tap()
    expect(phone).to_have_url(ACCOUNT_AFTER_CLAIM)
    expect(phone.get_by_role("status")).to_have_text(f"{device.serial_number} is now yours.")
    expect(phone.get_by_test_id("devices")).to_contain_text(device.serial_number)
    expect(phone.get_by_test_id("devices")).to_contain_text(device.product_name)


def assert_owned_by(http: httpx.Client, headers: dict[str, str], device: BoxedDevice) -> None:
    [owned] = owned_devices(http, headers)
    assert (owned["id"], owned["serial_number"]) == (device.device_id, device.serial_number)
    assert owned["owner_organization_id"] == personal_organization(http, headers)


def session_cookies(phone: Page) -> list[str]:
    return [cookie["value"] for cookie in phone.context.cookies() if cookie["name"] == SESSION_COOKIE]


def test_a_new_person_scans_the_label_signs_up_and_adds_the_device_to_their_account(
    phone: Page, boxed: BoxedDevice, http: httpx.Client, tmp_path: Path
) -> None:
    open_label(phone, boxed)
    assert fits_the_phone(phone)
    email = new_email()

    sign_up(phone, email, PASSWORD)
    expect(main(phone)).to_contain_text(f"Signed in as {email}")
    expect(phone).to_have_url(boxed.claim_path)
    claim_and_see_it_listed(phone, boxed)

    assert fits_the_phone(phone)
    picture = tmp_path / "account.png"
    assert phone.screenshot(path=picture, full_page=True).startswith(b"\x89PNG")
    assert picture.stat().st_size > 0
    assert_owned_by(http, api_headers(http, email), boxed)


def test_a_person_with_an_account_signs_in_on_the_claim_page_and_claims_the_device(
    phone: Page, boxed: BoxedDevice, make_person: Callable[[], Person], http: httpx.Client
) -> None:
    person = make_person()
    open_label(phone, boxed)

    sign_in(phone, person.email, person.password)
    expect(main(phone)).to_contain_text(f"Signed in as {person.email}")
    claim_and_see_it_listed(phone, boxed)

    assert_owned_by(http, person.headers, boxed)


def test_a_wrong_password_is_told_on_the_page_and_signs_nobody_in(
    phone: Page, boxed: BoxedDevice, make_person: Callable[[], Person], tenant: Tenant
) -> None:
    person = make_person()
    open_label(phone, boxed)

    with phone.expect_response(lambda response: response.url.endswith("/signin")) as answer:
        sign_in(phone, person.email, "not the right password")
    assert answer.value.status == 401
    expect(phone.get_by_role("alert")).to_have_text("The email or the password is wrong.")
    expect(claim_button(phone)).to_have_count(0)
    expect(phone.get_by_role("button", name="Sign in")).to_be_visible()
    assert session_cookies(phone) == []

    phone.goto(boxed.claim_path)
    expect(phone.get_by_role("button", name="Sign in")).to_be_visible()
    expect(claim_button(phone)).to_have_count(0)
    assert tenant.get(f"/api/v1/devices/{boxed.device_id}").json()["owner_organization_id"] is None


def test_a_claim_posted_without_the_pages_form_token_is_refused_and_claims_nothing(
    phone: Page,
    boxed: BoxedDevice,
    make_person: Callable[[], Person],
    http: httpx.Client,
    tenant: Tenant,
) -> None:
    person = make_person()
    open_label(phone, boxed)
    sign_in(phone, person.email, person.password)
    expect(claim_button(phone)).to_be_visible()
    [session] = session_cookies(phone)
    form_token = phone.locator("main input[name=csrf]").first.input_value()

    # Another site's form: the browser sends the person's cookies but cannot know the token.
    forged = phone.request.post(boxed.claim_path, form={"csrf": "guessed"}, max_redirects=0)
    # A client holding a stolen form token but not the cookie it must match.
    without_cookie = http.post(
        boxed.claim_path, data={"csrf": form_token}, headers={"Cookie": f"{SESSION_COOKIE}={session}"}
    )

    assert forged.status == 403 and "The form expired" in forged.text()
    assert without_cookie.status_code == 403 and "The form expired" in without_cookie.text
    assert owned_devices(http, person.headers) == []
    assert tenant.get(f"/api/v1/devices/{boxed.device_id}").json()["owner_organization_id"] is None
    claim_and_see_it_listed(phone, boxed)  # the refusal was the token's, not the session's
    assert_owned_by(http, person.headers, boxed)
