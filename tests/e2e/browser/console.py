"""The console's browser tests' helpers: a person made a member of a maker's organization
with a role, signed into the console, and each page checked (axe-core, the phone's width)."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.e2e.browser.accessibility import serious_violations
from tests.e2e.browser.claim_page import fits_the_phone, sign_in
from tests.e2e.browser.owners import Person
from tests.support.api import Tenant

API = "/api/v1"


def member(tenant: Tenant, person: Person, role: str) -> None:
    invited = tenant.post(
        f"{API}/organizations/{tenant.organization_id}/invitations",
        json={"email": person.email, "role": role},
    )
    assert invited.status_code == 201, invited.text
    accepted = tenant.http.post(
        f"{API}/invitations/accept", json={"code": invited.json()["code"]}, headers=person.headers
    )
    assert accepted.status_code == 200, accepted.text


def into_console(page: Page, person: Person) -> None:
    page.goto("/console")
    expect(page).to_have_url(re.compile(r"/signin"))
    sign_in(page, person.email, person.password)
    expect(page).to_have_url(re.compile(r"/console/[0-9a-f-]{36}$"))


def checked(page: Page) -> None:
    assert serious_violations(page) == []
    assert fits_the_phone(page)
