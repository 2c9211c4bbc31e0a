"""What the claim page says when its code cannot be claimed: unknown, taken, deleted, or
already the visitor's own."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.e2e.browser.claim_page import claim_button, fits_the_phone, main, sign_in
from tests.e2e.browser.owners import BoxedDevice, Person, unknown_code
from tests.support.api import Tenant

pytestmark = pytest.mark.browser


def test_an_unknown_code_says_it_belongs_to_no_device_with_404(phone: Page) -> None:
    opened = phone.goto(f"/claim/{unknown_code()}")

    assert opened is not None and opened.status == 404
    expect(main(phone)).to_contain_text("This QR code does not belong to any device we know.")
    expect(phone.get_by_role("button")).to_have_count(0)
    assert fits_the_phone(phone)


def test_a_device_deleted_by_its_manufacturer_says_deleted_with_410(
    phone: Page, boxed: BoxedDevice, tenant: Tenant
) -> None:
    assert tenant.delete(f"/api/v1/devices/{boxed.device_id}").status_code == 204

    opened = phone.goto(boxed.claim_path)

    assert opened is not None and opened.status == 410
    expect(main(phone)).to_contain_text("This device was deleted by its manufacturer.")
    expect(phone.get_by_role("button")).to_have_count(0)
    expect(phone.get_by_test_id("serial")).to_have_count(0)


def test_a_device_claimed_by_someone_else_first_says_so_and_offers_no_claim_button(
    phone: Page, boxed: BoxedDevice, make_person: Callable[[], Person], http: httpx.Client
) -> None:
    latecomer, first = make_person(), make_person()
    phone.goto(boxed.claim_path)
    sign_in(phone, latecomer.email, latecomer.password)
    expect(claim_button(phone)).to_be_visible()
    first.claim(http, boxed)

    with phone.expect_response(lambda response: response.request.method == "POST") as answer:
        claim_button(phone).tap()

    assert answer.value.status == 409
    expect(main(phone)).to_contain_text("This device has already been claimed by someone else.")
    expect(claim_button(phone)).to_have_count(0)
    opened = phone.goto(boxed.claim_path)
    assert opened is not None and opened.status == 200
    expect(main(phone)).to_contain_text("This device has already been claimed by someone else.")
    expect(claim_button(phone)).to_have_count(0)


def test_the_owner_scanning_their_claimed_device_again_is_told_it_is_theirs(
    make_phone: Callable[[], Page], boxed: BoxedDevice, make_person: Callable[[], Person], http: httpx.Client
) -> None:
    owner = make_person()
    owner.claim(http, boxed)
    new_phone = make_phone()
    new_phone.goto(boxed.claim_path)
    expect(main(new_phone)).to_contain_text("This device has already been claimed.")

    sign_in(new_phone, owner.email, owner.password)

    expect(new_phone.get_by_role("status")).to_have_text("This device is in your account.")
    expect(claim_button(new_phone)).to_have_count(0)
    new_phone.get_by_role("link", name="See your devices").tap()
    expect(new_phone.get_by_test_id("devices")).to_contain_text(boxed.serial_number)
