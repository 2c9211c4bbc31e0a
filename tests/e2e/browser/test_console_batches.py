"""The console's static-token batch (issue 15 item 4, Blynk.Console's page): the batch says
where its units are (activated, claimed, online), units of it are chosen to print the QR
codes of a few or of one (zip of PNGs a real decoder reads, or a PDF), and the create form
shows a progress bar while the server works. Phone and desktop, axe-core."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.e2e.browser.console import checked, into_console, member
from tests.e2e.browser.owners import Person, scanned
from tests.support.api import Tenant, unique
from tests.support.people import static_batch

API = "/api/v1"


def test_a_batch_says_where_its_units_are_and_prints_the_codes_of_a_few(
    browser: Page, tenant: Tenant, make_person: Callable[[], Person]
) -> None:
    product = tenant.product(name=unique("Bulb"))
    batch = static_batch(tenant, 4, product["id"])
    operator = make_person()
    member(tenant, operator, "operator")
    into_console(browser, operator)
    browser.goto(f"/console/{tenant.organization_id}/static-tokens/{batch['batch_id']}")
    figures = browser.get_by_test_id("batch-figures")
    expect(figures.locator('[data-figure="total"]')).to_have_text("4")
    expect(figures.locator('[data-figure="claimed"]')).to_have_text("0")
    expect(figures.locator('[data-figure="online"]')).to_have_text("0")
    checked(browser)

    browser.get_by_role("link", name="Choose units of this batch").click()
    rows = browser.get_by_test_id("devices").locator("tbody tr")
    expect(rows).to_have_count(4)
    chosen = [rows.nth(0).get_attribute("data-device"), rows.nth(2).get_attribute("data-device")]
    rows.nth(0).get_by_role("checkbox").check()
    rows.nth(2).get_by_role("checkbox").check()
    with browser.expect_download() as download:
        browser.get_by_role("button", name="QR codes (zip)").click()
    archive = zipfile.ZipFile(io.BytesIO(Path(download.value.path()).read_bytes()))
    pngs = sorted(name for name in archive.namelist() if name.endswith(".png"))
    assert len(pngs) == 2
    claim_links = {scanned(archive.read(name)) for name in pngs}  # zbar reads each
    assert all("/claim" in link for link in claim_links) and len(claim_links) == 2
    labels = archive.read(next(n for n in archive.namelist() if n.endswith(".csv"))).decode()
    assert all(str(device) in labels for device in chosen)

    rows.nth(1).get_by_role("checkbox").check()
    rows.nth(0).get_by_role("checkbox").uncheck()
    rows.nth(2).get_by_role("checkbox").uncheck()
    with browser.expect_download() as single:
        browser.get_by_role("button", name="Labels to print (PDF)").click()
    assert Path(single.value.path()).read_bytes().startswith(b"%PDF")


def test_labels_of_another_batchs_unit_are_refused_and_the_create_form_shows_progress(
    browser: Page, tenant: Tenant, make_person: Callable[[], Person]
) -> None:
    product = tenant.product()
    first = static_batch(tenant, 1, product["id"])
    second = static_batch(tenant, 1, product["id"])
    operator = make_person()
    member(tenant, operator, "operator")
    into_console(browser, operator)
    browser.goto(f"/console/{tenant.organization_id}/devices?batch={second['batch_id']}")
    unit = browser.get_by_test_id("devices").locator("tbody tr").first.get_attribute("data-device")
    csrf = browser.locator('input[name="csrf"]').first.input_value()
    answer = browser.request.post(
        f"/console/{tenant.organization_id}/devices/chosen",
        form={"csrf": csrf, "action": "labels-zip", "batch": first["batch_id"], "device": str(unit)},
    )
    assert answer.status == 422
    assert "Not of this batch" in answer.text()

    browser.goto(f"/console/{tenant.organization_id}/static-tokens")
    browser.get_by_label("Product").select_option(product["id"])
    browser.get_by_label("Number of units").fill("500")
    progress = browser.locator("progress")
    expect(progress).to_be_hidden()
    # Held on this page (a listener added after the console's own cancels the navigation),
    # the form shows what the console's script does while the server works.
    browser.evaluate(
        "document.querySelector('form[data-progress]').addEventListener('submit', e => e.preventDefault())"
    )
    browser.get_by_role("button", name="Create tokens").click()
    expect(progress).to_be_visible()
    expect(browser.locator("[data-progress-text]")).to_contain_text("Working")
    expect(browser.get_by_role("button", name="Create tokens")).to_be_disabled()
