"""The console's test event and role changes (issue 15): an admin sends a webhook endpoint a
test event, which its receiver gets signed as `webhook.test`, while a viewer sees no such
button; an admin makes an operator a viewer from the organization page, and the last owner
cannot step down. At phone and desktop widths, with axe-core on every page."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect
from standardwebhooks import Webhook

from lineside.bootstrap import Application
from lineside.domain.models import Role
from lineside.services import organizations, people
from tests.e2e.browser.claim_page import main
from tests.e2e.browser.console import checked, into_console, member
from tests.e2e.browser.owners import Person
from tests.support.api import Tenant
from tests.support.webhooks import Receiver, create_endpoint, wait_until

pytestmark = pytest.mark.browser

API = "/api/v1"


def role_of(http: httpx.Client, person: Person, organization_id: str) -> str | None:
    memberships = http.get(f"{API}/me", headers=person.headers).json()["organizations"]
    return next((org["role"] for org in memberships if org["id"] == organization_id), None)


def made_owner(application: Application, http: httpx.Client, tenant: Tenant, person: Person) -> None:
    """The operator at the server (who may make owners) invites ``person`` as an owner."""
    operator = organizations.operator_principal(application.services, tenant.organization_id)
    invited = people.invite(application.services, operator, tenant.organization_id, person.email, Role.OWNER)
    accepted = http.post(f"{API}/invitations/accept", json={"code": invited.code}, headers=person.headers)
    assert accepted.status_code == 200, accepted.text


def test_an_admin_sends_a_test_event_that_arrives_signed_and_a_viewer_sees_no_button(
    browser: Page, tenant: Tenant, make_person: Callable[[], Person]
) -> None:
    admin, viewer = make_person(), make_person()
    member(tenant, admin, "admin")
    member(tenant, viewer, "viewer")
    with Receiver() as receiver:
        endpoint = create_endpoint(tenant, receiver.url(), ["device.blessed"])  # not webhook.test
        page = f"/console/{tenant.organization_id}/webhooks/{endpoint['id']}"
        into_console(browser, admin)
        browser.goto(page)
        browser.get_by_role("button", name="Send a test event").click()
        expect(browser).to_have_url(re.compile(r"\?tested=1$"))
        expect(browser.get_by_role("status")).to_contain_text("webhook.test event goes out")
        expect(browser.get_by_test_id("deliveries").locator("tbody tr")).to_contain_text("webhook.test")
        checked(browser)

        [request] = wait_until(lambda: receiver.answered(200), "the test event")
        payload: dict[str, Any] = Webhook(endpoint["secret"]).verify(request.body, request.headers)
        assert payload["type"] == "webhook.test"
        assert payload["data"]["subject_id"] == endpoint["id"]
        browser.reload()
        expect(browser.get_by_test_id("deliveries").locator("tbody tr")).to_contain_text("succeeded")

        browser.context.clear_cookies()
        into_console(browser, viewer)
        browser.goto(page)
        expect(browser.get_by_test_id("endpoint")).to_contain_text(receiver.url())
        expect(browser.get_by_role("button", name="Send a test event")).to_have_count(0)
        checked(browser)
        # The form posted anyway, with the viewer's own CSRF token (from the sign-out form):
        csrf = browser.locator("input[name=csrf]").first.input_value()
        posted = browser.request.post(f"{page}/test", form={"csrf": csrf}, max_redirects=0)
        assert posted.status == 403
        assert "Your role here (viewer) cannot do this" in posted.text()
    assert len(receiver.received) == 1


def test_an_admin_makes_an_operator_a_viewer_from_the_organization_page(
    browser: Page, tenant: Tenant, make_person: Callable[[], Person], http: httpx.Client
) -> None:
    admin, operator = make_person(), make_person()
    member(tenant, admin, "admin")
    member(tenant, operator, "operator")
    into_console(browser, admin)
    browser.get_by_role("navigation", name="Console").get_by_role("link", name="Organization").click()
    members = browser.get_by_test_id("members")
    expect(members).to_contain_text(f"{operator.email} · operator")
    checked(browser)

    browser.get_by_label(f"Change {operator.email} to").select_option("viewer")
    members.locator("li", has_text=operator.email).get_by_role("button", name="Change role").click()

    expect(browser.get_by_role("status")).to_contain_text("The role is changed")
    expect(members).to_contain_text(f"{operator.email} · viewer")
    expect(browser.get_by_label(f"Change {operator.email} to")).to_have_value("viewer")
    checked(browser)
    assert role_of(http, operator, tenant.organization_id) == "viewer"


def test_the_last_owner_cannot_step_down(
    browser: Page,
    tenant: Tenant,
    make_person: Callable[[], Person],
    application: Application,
    http: httpx.Client,
) -> None:
    owner = make_person()
    made_owner(application, http, tenant, owner)
    into_console(browser, owner)
    browser.goto(f"/console/{tenant.organization_id}/organization")
    expect(browser.get_by_test_id("members")).to_contain_text(f"{owner.email} · owner")

    browser.get_by_label(f"Change {owner.email} to").select_option("admin")
    browser.get_by_test_id("members").get_by_role("button", name="Change role").click()

    expect(main(browser)).to_contain_text("Role not changed")
    expect(main(browser)).to_contain_text(f"{owner.email} is the organization's last owner")
    checked(browser)
    assert role_of(http, owner, tenant.organization_id) == "owner"
