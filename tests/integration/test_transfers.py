"""Device transfer (issue 12, Blynk's "transfer device"): an owner offers a device, the
receiver accepts by the code or its link, ownership moves in one step with one event; offers
end when accepted, replaced, cancelled or when the giver no longer owns the device. And an
owner changes their password, ending their other sign-ins."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from lineside.domain.secret_tokens import SecretKind, generate_secret
from tests.support.api import Tenant, assert_problem
from tests.support.people import PASSWORD, Person, label_rows, new_person, sign_in, static_batch

API = "/api/v1"
CONCURRENT_RECEIVERS = 6


def owned_device(tenant: Tenant) -> tuple[Person, str]:
    """A person who claimed a fresh device of ``tenant``, and that device's id."""
    [label] = label_rows(tenant, static_batch(tenant, 1))
    owner = new_person(tenant.http)
    assert owner.claim(label["claim_code"]).status_code == 201
    return owner, label["device_id"]


def offer(person: Person, device_id: str) -> dict[str, Any]:
    response = person.post(f"{API}/devices/{device_id}/transfers")
    assert response.status_code == 201, response.text
    offered: dict[str, Any] = response.json()
    return offered


def accept(person: Person, code: str) -> httpx.Response:
    return person.post(f"{API}/transfers/accept", json={"code": code})


def owned_ids(person: Person) -> list[str]:
    response = person.get(f"{API}/devices")
    assert response.status_code == 200, response.text
    return [device["id"] for device in response.json()["items"]]


def maker_view(tenant: Tenant, device_id: str) -> dict[str, Any]:
    response = tenant.get(f"{API}/devices/{device_id}")
    assert response.status_code == 200, response.text
    device: dict[str, Any] = response.json()
    return device


def audit(tenant: Tenant, device_id: str) -> list[dict[str, Any]]:
    response = tenant.get(f"{API}/audit-events", params={"subject_id": device_id})
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()["items"]
    return events


# -- offering and accepting ---------------------------------------------------------------------


def test_an_accepted_transfer_moves_the_device_to_the_receiver_in_one_step_with_one_event(
    tenant: Tenant,
) -> None:
    giver, device_id = owned_device(tenant)
    receiver = new_person(tenant.http)
    offered = offer(giver, device_id)
    assert offered["code"].startswith("lst_") and offered["url"].endswith(f"/transfer/{offered['code']}")
    assert offered["device_id"] == device_id

    accepted = accept(receiver, offered["code"])
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["owner_organization_id"] == receiver.organization_id
    assert owned_ids(receiver) == [device_id]
    assert owned_ids(giver) == []
    assert maker_view(tenant, device_id)["owner_organization_id"] == receiver.organization_id

    events = audit(tenant, device_id)
    types = [event["type"] for event in events]
    assert types.count("device.transferred") == 1
    assert "device.transfer_offered" in types
    [moved] = [event for event in events if event["type"] == "device.transferred"]
    assert moved["data"]["from_organization_id"] == giver.organization_id
    assert moved["data"]["owner_organization_id"] == receiver.organization_id
    assert offered["code"] not in json.dumps(events)  # the code is a secret: never in the log


def test_a_transfer_code_works_once(tenant: Tenant) -> None:
    giver, device_id = owned_device(tenant)
    first, second = new_person(tenant.http), new_person(tenant.http)
    code = offer(giver, device_id)["code"]
    assert accept(first, code).status_code == 200
    assert "accepted" in assert_problem(accept(second, code), 410)["detail"]
    assert owned_ids(first) == [device_id]
    assert owned_ids(second) == []


def test_of_concurrent_acceptances_of_one_code_exactly_one_wins(tenant: Tenant) -> None:
    giver, device_id = owned_device(tenant)
    code = offer(giver, device_id)["code"]
    receivers = [new_person(tenant.http) for _ in range(CONCURRENT_RECEIVERS)]
    start = threading.Barrier(CONCURRENT_RECEIVERS)
    base_url = str(tenant.http.base_url)

    def take(person: Person) -> int:
        with httpx.Client(base_url=base_url, timeout=30.0) as own:
            start.wait(timeout=30)
            body = {"code": code}
            return own.post(f"{API}/transfers/accept", json=body, headers=person.headers).status_code

    with ThreadPoolExecutor(CONCURRENT_RECEIVERS) as pool:
        statuses = list(pool.map(take, receivers))

    assert sorted(statuses) == [200] + [410] * (CONCURRENT_RECEIVERS - 1)
    winner = receivers[statuses.index(200)]
    assert maker_view(tenant, device_id)["owner_organization_id"] == winner.organization_id
    assert [event["type"] for event in audit(tenant, device_id)].count("device.transferred") == 1


def test_the_receiver_can_hand_the_device_on_and_the_first_owner_gets_it_back(tenant: Tenant) -> None:
    giver, device_id = owned_device(tenant)
    receiver = new_person(tenant.http)
    assert accept(receiver, offer(giver, device_id)["code"]).status_code == 200
    assert accept(giver, offer(receiver, device_id)["code"]).status_code == 200
    assert owned_ids(giver) == [device_id]
    assert owned_ids(receiver) == []


def test_accepting_ones_own_offer_is_a_conflict_and_changes_nothing(tenant: Tenant) -> None:
    giver, device_id = owned_device(tenant)
    code = offer(giver, device_id)["code"]
    assert "already yours" in assert_problem(accept(giver, code), 409)["detail"]
    assert accept(new_person(tenant.http), code).status_code == 200  # the offer still stands


# -- offers that end ----------------------------------------------------------------------------


def test_a_new_offer_replaces_the_old_one(tenant: Tenant) -> None:
    giver, device_id = owned_device(tenant)
    old, new = offer(giver, device_id)["code"], offer(giver, device_id)["code"]
    receiver = new_person(tenant.http)
    assert "cancelled" in assert_problem(accept(receiver, old), 410)["detail"]
    assert accept(receiver, new).status_code == 200


def test_a_cancelled_offer_can_no_longer_be_accepted(tenant: Tenant) -> None:
    giver, device_id = owned_device(tenant)
    code = offer(giver, device_id)["code"]
    assert giver.delete(f"{API}/devices/{device_id}/transfers").status_code == 204
    assert_problem(accept(new_person(tenant.http), code), 410)
    assert owned_ids(giver) == [device_id]
    assert "device.transfer_cancelled" in [event["type"] for event in audit(tenant, device_id)]


def test_an_offer_ends_when_the_giver_unclaims_the_maker_disclaims_or_deletes(tenant: Tenant) -> None:
    endings: list[Callable[[Person, str], httpx.Response]] = [
        lambda giver, device_id: giver.delete(f"{API}/devices/{device_id}/claim"),
        lambda _giver, device_id: tenant.post(f"{API}/devices/{device_id}/disclaim"),
        lambda _giver, device_id: tenant.delete(f"{API}/devices/{device_id}"),
    ]
    for end in endings:
        giver, device_id = owned_device(tenant)
        code = offer(giver, device_id)["code"]
        assert end(giver, device_id).status_code in (200, 204)
        receiver = new_person(tenant.http)
        assert_problem(accept(receiver, code), 410)
        assert owned_ids(receiver) == []


def test_unknown_and_malformed_transfer_codes_are_not_found(tenant: Tenant) -> None:
    receiver = new_person(tenant.http)
    for code in (generate_secret(SecretKind.TRANSFER_CODE), generate_secret(SecretKind.CLAIM_CODE), "lst_"):
        assert_problem(accept(receiver, code), 404)


# -- who may offer ------------------------------------------------------------------------------


def test_only_the_owner_may_offer_or_cancel_a_transfer(
    tenant: Tenant, make_tenant: Callable[[], Tenant]
) -> None:
    giver, device_id = owned_device(tenant)
    code = offer(giver, device_id)["code"]
    stranger, other_maker = new_person(tenant.http), make_tenant()
    for outsider in (stranger, tenant, other_maker):  # the maker made it, but does not own it
        assert_problem(outsider.post(f"{API}/devices/{device_id}/transfers"), 404)
        assert_problem(outsider.delete(f"{API}/devices/{device_id}/transfers"), 404)
    assert accept(stranger, code).status_code == 200  # the owner's offer is untouched


def test_a_device_that_was_never_claimed_cannot_be_offered(tenant: Tenant) -> None:
    [label] = label_rows(tenant, static_batch(tenant, 1))
    assert_problem(tenant.post(f"{API}/devices/{label['device_id']}/transfers"), 404)
    assert_problem(tenant.post(f"{API}/devices/not-a-uuid/transfers"), 404)


# -- changing the password ----------------------------------------------------------------------


def change_password(person: Person, current: str, new: str) -> httpx.Response:
    return person.post(f"{API}/me/password", json={"current_password": current, "new_password": new})


def test_changing_the_password_ends_other_sign_ins_and_keeps_this_one(tenant: Tenant) -> None:
    person = new_person(tenant.http)
    elsewhere = sign_in(tenant.http, person.email)
    changed = change_password(person, PASSWORD, "a brand new passphrase")
    assert changed.status_code == 200, changed.text
    assert changed.json() == {"other_sessions_ended": 1}

    assert person.get(f"{API}/me").status_code == 200
    old_session = tenant.http.get(f"{API}/me", headers={"Authorization": f"Bearer {elsewhere}"})
    assert_problem(old_session, 401)
    assert sign_in(tenant.http, person.email, "a brand new passphrase")
    refused = tenant.http.post(f"{API}/auth/token", json={"email": person.email, "password": PASSWORD})
    assert_problem(refused, 401)


def test_a_wrong_current_password_or_a_weak_new_one_changes_nothing(tenant: Tenant) -> None:
    person = new_person(tenant.http)
    assert (
        "current password"
        in assert_problem(change_password(person, "not my password", "x" * 12), 401)["detail"]
    )
    assert_problem(change_password(person, PASSWORD, "short"), 422)
    assert sign_in(tenant.http, person.email, PASSWORD)


def test_an_api_key_has_no_password_to_change(tenant: Tenant) -> None:
    body = {"current_password": PASSWORD, "new_password": "whatever it is now"}
    assert_problem(tenant.post(f"{API}/me/password", json=body), 403)
