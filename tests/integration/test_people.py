"""People (issue 3): signing up, signing in and out, and joining a client's organization by
invitation, then claiming devices into it."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from lineside.settings import Settings
from tests.support.api import Tenant, assert_problem, unique
from tests.support.people import (
    PASSWORD,
    Person,
    label_rows,
    new_person,
    sign_in,
    sign_up,
    unique_email,
)

API = "/api/v1"


def me(http: httpx.Client, token: str) -> httpx.Response:
    return http.get(f"{API}/me", headers={"Authorization": f"Bearer {token}"})


def invite(tenant: Tenant, organization_id: str, email: str) -> httpx.Response:
    return tenant.post(f"{API}/organizations/{organization_id}/invitations", json={"email": email})


def accept(person: Person, code: str) -> httpx.Response:
    return person.post(f"{API}/invitations/accept", json={"code": code})


def invited_person(tenant: Tenant, organization_id: str) -> Person:
    """A person who signed up and accepted an invitation into ``organization_id``."""
    person = new_person(tenant.http)
    created = invite(tenant, organization_id, person.email)
    assert created.status_code == 201, created.text
    accepted = accept(person, created.json()["code"])
    assert accepted.status_code == 200, accepted.text
    return person


# -- accounts -----------------------------------------------------------------------------


def test_signing_up_makes_an_account_with_a_personal_organization_under_a_lower_case_email(
    client: httpx.Client,
) -> None:
    typed = f"Ada.{unique('Lovelace')}@Example.COM"
    user = sign_up(client, typed)
    assert user["email"] == typed.lower()
    assert user["id"] != user["organization_id"]

    token = sign_in(client, typed)  # signing in with the email as typed works too
    profile = me(client, token)
    assert profile.status_code == 200, profile.text
    assert profile.json()["email"] == typed.lower()
    assert [org["id"] for org in profile.json()["organizations"]] == [user["organization_id"]]


def test_an_email_can_sign_up_only_once_whatever_its_case(client: httpx.Client) -> None:
    email = unique_email()
    sign_up(client, email)
    again = client.post(f"{API}/users", json={"email": email.upper(), "password": "another password"})
    assert "sign in" in assert_problem(again, 409)["detail"]
    sign_in(client, email)  # the first account is untouched
    assert (
        client.post(f"{API}/auth/token", json={"email": email, "password": "another password"}).status_code
        == 401
    )


@pytest.mark.parametrize(
    "body",
    [
        {"email": "{email}", "password": "123456789"},
        {"email": "{email}", "password": ""},
        {"email": "{email}", "password": "x" * 1025},
        {"email": "{email}", "password": 1234567890},
        {"email": "{email}"},
        {"email": "not-an-email", "password": PASSWORD},
        {"email": "someone@localhost", "password": PASSWORD},
        {"email": "two words@example.com", "password": PASSWORD},
        {"email": "a@b@example.com", "password": PASSWORD},
        {"email": "", "password": PASSWORD},
        {"password": PASSWORD},
    ],
    ids=[
        "password of 9 characters",
        "empty password",
        "password over 1024 characters",
        "password is a number",
        "no password",
        "no @",
        "no domain dot",
        "a space",
        "two @",
        "empty email",
        "no email",
    ],
)
def test_a_bad_sign_up_is_refused_and_makes_no_account(client: httpx.Client, body: dict[str, Any]) -> None:
    email = unique_email()
    if body.get("email") == "{email}":
        body = {**body, "email": email}
    assert_problem(client.post(f"{API}/users", json=body), 422)
    if body.get("email") == email:  # the address is still free
        sign_up(client, email)


def test_signing_in_gives_a_fresh_sign_in_token_each_time(client: httpx.Client, settings: Settings) -> None:
    email = sign_up(client)["email"]
    responses = [
        client.post(f"{API}/auth/token", json={"email": email, "password": PASSWORD}) for _ in range(2)
    ]
    tokens = []
    for response in responses:
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["access_token"].startswith("lsu_")
        assert body["token_type"] == "bearer"
        assert body["expires_in"] == settings.session_days * 24 * 3600
        tokens.append(body["access_token"])
    assert tokens[0] != tokens[1]
    assert all(me(client, token).status_code == 200 for token in tokens)


def test_a_wrong_password_and_an_unknown_email_get_the_same_answer(client: httpx.Client) -> None:
    email = sign_up(client)["email"]
    wrong_password = client.post(f"{API}/auth/token", json={"email": email, "password": "not the password"})
    unknown_email = client.post(f"{API}/auth/token", json={"email": unique_email(), "password": PASSWORD})
    first, second = assert_problem(wrong_password, 401), assert_problem(unknown_email, 401)
    assert first == second
    assert wrong_password.headers["WWW-Authenticate"] == unknown_email.headers["WWW-Authenticate"] == "Bearer"


def test_me_answers_people_only(client: httpx.Client, tenant: Tenant) -> None:
    assert_problem(client.get(f"{API}/me"), 401)
    assert_problem(me(client, "lsu_" + "x" * 43), 401)
    assert_problem(tenant.get(f"{API}/me"), 404)  # an API key is no person


def test_signing_out_ends_that_sign_in_token_at_once_and_no_other(client: httpx.Client) -> None:
    email = sign_up(client)["email"]
    leaving, staying = sign_in(client, email), sign_in(client, email)
    out = client.delete(f"{API}/auth/token", headers={"Authorization": f"Bearer {leaving}"})
    assert out.status_code == 204, out.text
    assert_problem(me(client, leaving), 401)
    assert_problem(client.delete(f"{API}/auth/token", headers={"Authorization": f"Bearer {leaving}"}), 401)
    assert me(client, staying).status_code == 200


# -- invitations into a client's organization --------------------------------------------


def test_an_invited_person_joins_the_client_organization_and_claims_into_it(tenant: Tenant) -> None:
    client_org = tenant.sub_tenant(unique("client"))
    person = new_person(tenant.http)
    created = invite(tenant, client_org.organization_id, person.email.upper())
    assert created.status_code == 201, created.text
    invitation = created.json()
    assert invitation["code"].startswith("lsi_")
    assert (invitation["organization_id"], invitation["email"]) == (client_org.organization_id, person.email)

    accepted = accept(person, invitation["code"])
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["id"] == client_org.organization_id
    organizations = {org["id"] for org in person.get(f"{API}/me").json()["organizations"]}
    assert organizations == {person.organization_id, client_org.organization_id}

    batch = tenant.created(f"{API}/products/{tenant.product()['id']}/static-tokens", {"count": 1})
    [label] = label_rows(tenant, batch)
    claimed = person.claim(label["claim_code"], organization_id=client_org.organization_id)
    assert claimed.status_code == 201, claimed.text
    assert claimed.json()["owner_organization_id"] == client_org.organization_id
    seen_by_maker = tenant.get(f"{API}/devices/{label['device_id']}").json()
    assert seen_by_maker["owner_organization_id"] == client_org.organization_id
    assert client_org.get(f"{API}/devices/{label['device_id']}").status_code == 200
    assert all("lsi_" not in str(event) for event in tenant.get(f"{API}/audit-events").json()["items"])

    acting = {"Lineside-Organization": client_org.organization_id}
    assert person.get(f"{API}/devices/{label['device_id']}", headers=acting).status_code == 200
    assert_problem(person.get(f"{API}/devices/{label['device_id']}"), 404)  # as their personal org
    unclaimed = person.delete(f"{API}/devices/{label['device_id']}/claim", headers=acting)
    assert unclaimed.status_code == 200, unclaimed.text
    assert tenant.get(f"{API}/devices/{label['device_id']}").json()["owner_organization_id"] is None


def test_a_person_cannot_act_for_an_organization_they_do_not_belong_to(tenant: Tenant) -> None:
    person = new_person(tenant.http)
    response = person.get(f"{API}/devices", headers={"Lineside-Organization": tenant.organization_id})
    assert_problem(response, 404)


def test_an_invitation_is_accepted_once_and_an_unknown_one_never(tenant: Tenant) -> None:
    client_org = tenant.sub_tenant()
    person = new_person(tenant.http)
    code = invite(tenant, client_org.organization_id, person.email).json()["code"]
    assert accept(person, code).status_code == 200
    assert_problem(accept(person, code), 404)
    assert_problem(accept(new_person(tenant.http), code), 404)
    assert_problem(accept(person, "lsi_" + "x" * 43), 404)


def test_an_api_key_cannot_accept_an_invitation_nor_use_it_up(tenant: Tenant) -> None:
    client_org = tenant.sub_tenant()
    person = new_person(tenant.http)
    code = invite(tenant, client_org.organization_id, person.email).json()["code"]
    assert_problem(tenant.post(f"{API}/invitations/accept", json={"code": code}), 403)
    assert accept(person, code).status_code == 200


def test_an_organization_can_invite_only_into_its_own_organizations(tenant: Tenant, make_tenant: Any) -> None:
    client_org = tenant.sub_tenant()
    stranger: Tenant = make_tenant()
    assert_problem(invite(stranger, client_org.organization_id, unique_email()), 404)
    assert_problem(invite(client_org, tenant.organization_id, unique_email()), 404)  # not upwards
    assert_problem(invite(tenant, client_org.organization_id, "not-an-email"), 422)


def test_a_person_cannot_claim_into_an_organization_they_do_not_belong_to(
    tenant: Tenant, make_tenant: Any
) -> None:
    member_of = tenant.sub_tenant()
    other_client = tenant.sub_tenant()
    person = invited_person(tenant, member_of.organization_id)
    somebody_else = new_person(tenant.http)
    batch = tenant.created(f"{API}/products/{tenant.product()['id']}/static-tokens", {"count": 1})
    [label] = label_rows(tenant, batch)

    for organization_id in (
        other_client.organization_id,
        tenant.organization_id,
        somebody_else.organization_id,
        make_tenant().organization_id,
        "01900000-0000-7000-8000-000000000000",
    ):
        refused = person.claim(label["claim_code"], organization_id=organization_id)
        assert_problem(refused, 404)
    assert tenant.get(f"{API}/devices/{label['device_id']}").json()["owner_organization_id"] is None


# -- roles -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "may_define", "may_make_keys"),
    [("viewer", False, False), ("operator", True, False), ("admin", True, True)],
)
def test_an_invitations_role_is_what_the_person_may_do_there(
    tenant: Tenant, role: str, may_define: bool, may_make_keys: bool
) -> None:
    person = new_person(tenant.http)
    created = tenant.post(
        f"{API}/organizations/{tenant.organization_id}/invitations",
        json={"email": person.email, "role": role},
    )
    assert created.status_code == 201, created.text
    assert created.json()["role"] == role
    assert accept(person, created.json()["code"]).status_code == 200
    memberships = {org["id"]: org["role"] for org in person.get(f"{API}/me").json()["organizations"]}
    assert memberships == {person.organization_id: "owner", tenant.organization_id: role}

    acting = {"Lineside-Organization": tenant.organization_id}
    product = tenant.product()
    assert person.get(f"{API}/products/{product['id']}", headers=acting).status_code == 200
    defined = person.post(
        f"{API}/devices", json={"product_id": product["id"], "serial_number": unique("SN")}, headers=acting
    )
    assert defined.status_code == (201 if may_define else 403), defined.text
    key = person.post(f"{API}/api-keys", json={"name": "k", "scopes": ["read"]}, headers=acting)
    assert key.status_code == (201 if may_make_keys else 403), key.text


def test_an_api_key_cannot_make_an_owner_and_an_unknown_role_is_refused(tenant: Tenant) -> None:
    path = f"{API}/organizations/{tenant.organization_id}/invitations"
    assert_problem(tenant.post(path, json={"email": unique_email(), "role": "owner"}), 403)
    assert_problem(tenant.post(path, json={"email": unique_email(), "role": "superuser"}), 422)
