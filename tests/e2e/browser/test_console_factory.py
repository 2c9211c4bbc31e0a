"""The console's factory page (issue 15 item 5): test runs arrive red or green (with the word)
without a reload, each fixture's and each enrollment token's figures ("where used": units
enrolled, first-pass yield, last used), the week's blessing counts, and production tokens
with their claim state (used by which device, waiting, expired). Phone and desktop, axe-core."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import Page, expect

from tests.e2e.browser.console import checked, into_console, member
from tests.e2e.browser.owners import Person
from tests.support.api import Tenant, unique
from tests.support.factory import activate, enrolled, factory_token, line_unit, production_token, record_run

API = "/api/v1"


def test_test_runs_arrive_live_and_tokens_say_where_they_were_used(
    browser: Page, tenant: Tenant, make_person: Callable[[], Person]
) -> None:
    product = tenant.product(name=unique("Plug"))
    name = unique("Line 2")
    token = factory_token(tenant, product["id"], name=name)
    blessed = line_unit(tenant, token)
    waiting = enrolled(tenant.http, token)["device"]
    operator = make_person()
    member(tenant, operator, "operator")
    into_console(browser, operator)
    browser.get_by_role("navigation", name="Console").get_by_role("link", name="Factory").click()
    runs = browser.get_by_test_id("test-runs")
    expect(runs.locator("li")).to_have_count(1)
    expect(runs.locator("li").first.locator(".result")).to_have_text("passed")
    tokens = browser.get_by_test_id("enrollment-tokens")
    row = tokens.locator("tr", has_text=name)
    expect(row.locator('[data-figure="enrolled"]')).to_have_text("2")
    expect(row).to_contain_text("100 %")
    expect(browser.get_by_test_id("blessed-week")).to_have_text("1")
    checked(browser)

    record_run(tenant, waiting["id"], False, fixture="bench 9")  # arrives without a reload
    expect(runs.locator("li")).to_have_count(2, timeout=15_000)
    newest = runs.locator("li").first
    expect(newest.locator(".result")).to_have_text("failed")
    expect(newest).to_contain_text("bench 9")

    used, unused = production_token(tenant), production_token(tenant)
    assert activate(tenant.http, used, blessed["device"]["id"]).status_code == 200
    browser.reload()
    table = browser.get_by_test_id("production-tokens")
    expect(table.locator("tbody tr")).to_have_count(2)
    states = table.locator('[data-figure="state"]')
    expect(states.nth(0)).to_contain_text("waiting")  # the newest: unused
    expect(states.nth(1)).to_contain_text("used")
    expect(table.locator("tbody tr").nth(1).get_by_role("link")).to_be_visible()
    assert unused["token_id"] != used["token_id"]
    checked(browser)


def test_another_organizations_line_is_not_shown(
    browser: Page, tenant: Tenant, make_tenant: Callable[[], Tenant], make_person: Callable[[], Person]
) -> None:
    other = make_tenant()
    theirs = factory_token(other, other.product()["id"], name=unique("Their line"))
    unit = enrolled(other.http, theirs)["device"]
    record_run(other, unit["id"], True, fixture="their bench")
    production_token(other)
    viewer = make_person()
    member(tenant, viewer, "viewer")
    into_console(browser, viewer)
    browser.goto(f"/console/{tenant.organization_id}/factory")
    expect(browser.get_by_text("No test runs yet.")).to_be_visible()
    expect(browser.get_by_test_id("production-tokens")).to_have_count(0)
    assert "their bench" not in browser.content()
    fragment = browser.request.get(f"/console/{other.organization_id}/factory/test-runs")
    assert fragment.status == 404
