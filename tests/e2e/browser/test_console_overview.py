"""The console's overview over time (issue 15): the funnel per day or week as charts with the
same figures in a table, activations per hour, devices online now, first-pass yield and
retest rate per fixture and per factory token, and a feed of the latest events that
refreshes itself (the console's one script), at phone and desktop widths with axe-core."""

from __future__ import annotations

import re
from collections.abc import Callable

from playwright.sync_api import Page, expect

from tests.e2e.browser.console import checked, into_console, member
from tests.e2e.browser.owners import Person
from tests.support.api import Tenant, unique
from tests.support.factory import bless, enroll, enrolled, factory_token, hardware_id, record_run

API = "/api/v1"


def test_the_overview_charts_the_funnel_and_the_yield_per_fixture_and_token(
    browser: Page, tenant: Tenant, make_person: Callable[[], Person]
) -> None:
    product = tenant.product(name=unique("Meter"))
    for _ in range(3):
        tenant.device(product["id"])
    token_name = unique("Line 1")
    token = factory_token(tenant, product["id"], name=token_name)
    good, bad = hardware_id(), hardware_id()
    first, second = (enrolled(tenant.http, token, unit)["device"] for unit in (good, bad))
    record_run(tenant, first["id"], True, fixture="bench A")
    record_run(tenant, second["id"], False, fixture="bench B")
    for unit in (first, second):
        assert bless(tenant, unit["id"]).status_code == 200
    assert enroll(tenant.http, token, bad).status_code in (200, 201)
    record_run(tenant, second["id"], True, fixture="bench A")
    viewer = make_person()
    member(tenant, viewer, "viewer")

    into_console(browser, viewer)
    browser.get_by_label("Product").select_option(label=product["name"])
    browser.get_by_role("button", name="Show").click()
    expect(browser.get_by_test_id("chart-defined")).to_contain_text("3")
    expect(browser.get_by_test_id("chart-under_test")).to_contain_text("3")
    expect(browser.get_by_test_id("chart-blessed")).to_contain_text("1")
    assert browser.get_by_test_id("chart-defined").locator("rect").count() == 1  # today only
    fixtures = browser.get_by_test_id("fixture-yield")
    expect(fixtures.locator('tr[data-source="bench A"] [data-figure="yield"]')).to_have_text("100 %")
    expect(fixtures.locator('tr[data-source="bench B"] [data-figure="yield"]')).to_have_text("0 %")
    tokens = browser.get_by_test_id("token-yield")
    expect(tokens).to_contain_text(token_name)
    expect(tokens.locator('[data-figure="yield"]')).to_have_text("50 %")
    expect(tokens.locator('[data-figure="retests"]')).to_have_text("50 %")
    expect(browser.get_by_test_id("online-now")).to_have_text("0")
    checked(browser)

    browser.get_by_label("Count per", exact=True).select_option("week")
    browser.get_by_label("Range", exact=True).select_option("90")
    browser.get_by_role("button", name="Show").click()
    expect(browser).to_have_url(re.compile(r"bucket=week"))
    browser.get_by_text("The same figures as a table").click()
    rows = browser.get_by_test_id("funnel-table").locator("tbody tr")
    expect(rows).to_have_count(13)  # 90 days in weeks
    checked(browser)


def test_the_activity_feed_refreshes_itself_and_a_bad_range_is_explained(
    browser: Page, tenant: Tenant, make_person: Callable[[], Person]
) -> None:
    product = tenant.product()
    viewer = make_person()
    member(tenant, viewer, "viewer")
    into_console(browser, viewer)
    feed = browser.get_by_test_id("activity")
    expect(feed).not_to_contain_text("devices.batch_defined")
    made = tenant.post(
        f"{API}/device-batches", json={"product_id": product["id"], "serial_numbers": [unique("SN")]}
    )
    assert made.status_code == 201, made.text
    expect(browser.get_by_test_id("activity")).to_contain_text("devices.batch_defined", timeout=15_000)

    browser.goto(f"/console/{tenant.organization_id}?days=abc")
    expect(browser.get_by_role("alert")).to_contain_text("whole number of days")
    browser.goto(f"/console/{tenant.organization_id}?days=7&product={unique('no-such')}")
    expect(browser.get_by_role("alert")).to_contain_text("No product")
    checked(browser)
