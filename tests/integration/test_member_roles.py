"""Changing a member's role (issue 15): `PUT /api/v1/organizations/{id}/members/{user_id}` with
`{"role": ...}`. Admins change roles up to admin, only owners make or unmake owners, the last
owner stays one (409, even when two owners demote each other at once), a person who is not a
member there is a 404, a viewer a 403, and a role that does not exist a 422."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from lineside.bootstrap import Application
from lineside.domain.errors import Conflict
from lineside.domain.models import Role
from lineside.services import organizations, people
from tests.support.api import Tenant, assert_problem
from tests.support.people import Person, new_person

API = "/api/v1"


def joined(tenant: Tenant, role: str) -> Person:
    """A person invited into the tenant's organization with ``role`` (an admin key invites)."""
    person = new_person(tenant.http)
    invited = tenant.created(
        f"{API}/organizations/{tenant.organization_id}/invitations", {"email": person.email, "role": role}
    )
    assert person.post(f"{API}/invitations/accept", json={"code": invited["code"]}).status_code == 200
    return person


def owner_of(application: Application, tenant: Tenant) -> Person:
    """A person made an owner of the tenant's organization by the operator (who may)."""
    person = new_person(tenant.http)
    operator = organizations.operator_principal(application.services, tenant.organization_id)
    invited = people.invite(application.services, operator, tenant.organization_id, person.email, Role.OWNER)
    assert person.post(f"{API}/invitations/accept", json={"code": invited.code}).status_code == 200
    return person


def put_role(caller: Tenant | Person, organization_id: str, user_id: str, role: Any) -> Any:
    headers = {"Lineside-Organization": organization_id} if isinstance(caller, Person) else {}
    return caller.http.put(
        f"{API}/organizations/{organization_id}/members/{user_id}",
        json={"role": role},
        headers={**caller.headers, **headers},
    )


def role_there(person: Person, organization_id: str) -> str:
    memberships = {org["id"]: org["role"] for org in person.get(f"{API}/me").json()["organizations"]}
    return str(memberships.get(organization_id))


def test_an_admin_makes_an_operator_a_viewer_and_the_change_is_recorded(tenant: Tenant) -> None:
    admin, operator = joined(tenant, "admin"), joined(tenant, "operator")

    changed = put_role(admin, tenant.organization_id, operator.user_id, "viewer")

    assert changed.status_code == 200, changed.text
    assert changed.json() == {
        "user_id": operator.user_id,
        "email": operator.email,
        "organization_id": tenant.organization_id,
        "role": "viewer",
        "previous_role": "operator",
    }
    assert role_there(operator, tenant.organization_id) == "viewer"
    acting = {"Lineside-Organization": tenant.organization_id}
    product = tenant.product()
    defined = operator.post(
        f"{API}/devices", json={"product_id": product["id"], "serial_number": "SN-1"}, headers=acting
    )
    assert_problem(defined, 403)  # a viewer now, at once
    events = tenant.get(f"{API}/audit-events", params={"type": "membership.role_changed"}).json()["items"]
    assert [(e["subject_type"], e["subject_id"], e["actor"], e["data"]) for e in events] == [
        ("user", operator.user_id, f"user:{admin.user_id}", {"old_role": "operator", "new_role": "viewer"})
    ]


def test_an_admin_key_changes_roles_up_to_admin_and_never_makes_an_owner(tenant: Tenant) -> None:
    person = joined(tenant, "viewer")
    assert put_role(tenant, tenant.organization_id, person.user_id, "admin").json()["role"] == "admin"
    refused = assert_problem(put_role(tenant, tenant.organization_id, person.user_id, "owner"), 403)
    assert "Only an owner" in refused["detail"]
    assert role_there(person, tenant.organization_id) == "admin"


def test_only_an_owner_unmakes_an_owner_and_the_last_owner_stays_one(
    application: Application, tenant: Tenant
) -> None:
    boss, admin = owner_of(application, tenant), joined(tenant, "admin")
    org = tenant.organization_id
    assert_problem(put_role(admin, org, boss.user_id, "admin"), 403)

    last = assert_problem(put_role(boss, org, boss.user_id, "admin"), 409)

    assert "last owner" in last["detail"]
    assert role_there(boss, org) == "owner"
    assert put_role(boss, org, admin.user_id, "owner").json()["previous_role"] == "admin"
    assert put_role(boss, org, boss.user_id, "admin").json()["role"] == "admin"
    assert (role_there(boss, org), role_there(admin, org)) == ("admin", "owner")


def test_another_organizations_person_or_organization_is_not_found(tenant: Tenant, make_tenant: Any) -> None:
    other = make_tenant()
    theirs = joined(other, "operator")
    outsider = new_person(tenant.http)
    mine = joined(tenant, "operator")
    for user_id in (theirs.user_id, outsider.user_id, "00000000-0000-4000-8000-000000000000", "nobody"):
        assert_problem(put_role(tenant, tenant.organization_id, user_id, "viewer"), 404)
    # The other organization's id, with its member or with ours: not found either way.
    assert_problem(put_role(tenant, other.organization_id, theirs.user_id, "viewer"), 404)
    assert_problem(put_role(tenant, other.organization_id, mine.user_id, "viewer"), 404)
    assert role_there(theirs, other.organization_id) == "operator"
    assert role_there(mine, tenant.organization_id) == "operator"


def test_a_parent_changes_a_role_in_its_client_organization(tenant: Tenant) -> None:
    client = tenant.sub_tenant()
    person = joined(client, "admin")
    changed = put_role(tenant, client.organization_id, person.user_id, "operator")
    assert changed.status_code == 200, changed.text
    assert role_there(person, client.organization_id) == "operator"
    assert_problem(put_role(client, tenant.organization_id, person.user_id, "viewer"), 404)


def test_a_viewer_or_an_operator_is_refused_with_403(tenant: Tenant) -> None:
    viewer, operator = joined(tenant, "viewer"), joined(tenant, "operator")
    refused = assert_problem(put_role(viewer, tenant.organization_id, operator.user_id, "viewer"), 403)
    assert "viewer" in refused["detail"]
    assert_problem(put_role(operator, tenant.organization_id, operator.user_id, "admin"), 403)
    key = tenant.created(f"{API}/api-keys", {"name": "reader", "scopes": ["read"]})["key"]
    reader = Tenant(tenant.http, tenant.organization_id, key)
    assert_problem(put_role(reader, tenant.organization_id, operator.user_id, "viewer"), 403)
    assert role_there(operator, tenant.organization_id) == "operator"


@pytest.mark.parametrize(
    "body", [{"role": "superuser"}, {"role": None}, {}, {"role": "viewer", "extra": 1}, {"role": ["viewer"]}]
)
def test_a_role_that_does_not_exist_is_a_422_problem(tenant: Tenant, body: dict[str, Any]) -> None:
    person = joined(tenant, "operator")
    response = tenant.http.put(
        f"{API}/organizations/{tenant.organization_id}/members/{person.user_id}",
        json=body,
        headers=tenant.headers,
    )
    assert_problem(response, 422)
    assert role_there(person, tenant.organization_id) == "operator"


def demoted_at_once(application: Application, organization_id: str, one: Person, two: Person) -> list[str]:
    """Each owner demotes the other at the same moment; what each got."""
    ctx = application.services
    start, outcomes = threading.Barrier(2), []

    def demote(caller: Person, other: Person) -> None:
        principal = people.authenticate_user_token(ctx, caller.token, organization_id)
        start.wait()
        try:
            people.change_role(ctx, principal, other.user_id, Role.ADMIN)
            outcomes.append("changed")
        except Conflict:
            outcomes.append("last owner")

    threads = [threading.Thread(target=demote, args=pair) for pair in ((one, two), (two, one))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(outcomes)


def test_two_owners_demoting_each_other_at_once_leave_one_owner(
    application: Application, make_tenant: Any
) -> None:
    """The owners' memberships are locked first (on PostgreSQL; SQLite has one writer anyway),
    so the second demotion sees the first and is refused."""
    for _ in range(5):
        tenant = make_tenant()
        one, two = owner_of(application, tenant), owner_of(application, tenant)
        assert demoted_at_once(application, tenant.organization_id, one, two) == ["changed", "last owner"]
        roles = {role_there(one, tenant.organization_id), role_there(two, tenant.organization_id)}
        assert roles == {"owner", "admin"}
