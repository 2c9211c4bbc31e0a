"""Claims (issue 3): the QR code on the box moves a device into its owner's organization;
the owner gives it up, the maker takes it back or deletes it; each step is audited; and
wrong guesses are rate-limited without ever locking the rightful owner out."""

from __future__ import annotations

import csv
import io
import json
import threading
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from lineside.domain.secret_tokens import SecretKind, generate_secret
from tests.support.api import Tenant, assert_problem
from tests.support.people import (
    Person,
    label_rows,
    new_person,
    path_of,
    static_batch,
    unique_address,
)

API = "/api/v1"
CONCURRENT_CLAIMANTS = 8
STRICT_LIMIT = 3
SECRET_PREFIXES = ("lsc_", "lsd_", "lsu_", "lsk_", "lsi_")


def one_label(tenant: Tenant) -> dict[str, str]:
    """A fresh static token of ``tenant``: its device id and claim code."""
    [label] = label_rows(tenant, static_batch(tenant, 1))
    return label


def as_maker(tenant: Tenant, device_id: str) -> dict[str, Any]:
    response = tenant.get(f"{API}/devices/{device_id}")
    assert response.status_code == 200, response.text
    device: dict[str, Any] = response.json()
    return device


def owned_ids(person: Person) -> list[str]:
    response = person.get(f"{API}/devices")
    assert response.status_code == 200, response.text
    return [device["id"] for device in response.json()["items"]]


def event_types(tenant: Tenant, device_id: str) -> list[str]:
    response = tenant.get(f"{API}/audit-events", params={"subject_id": device_id})
    assert response.status_code == 200, response.text
    return [event["type"] for event in response.json()["items"]]


def exported_rows(tenant: Tenant, batch: dict[str, Any]) -> list[dict[str, str]]:
    """The rows of the batch's one-time export, device tokens included."""
    response = tenant.get(path_of(batch["export_url"]))
    assert response.status_code == 200, response.text
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        return list(csv.DictReader(io.StringIO(archive.read("tokens.csv").decode("utf-8"))))


def unknown_code() -> str:
    return generate_secret(SecretKind.CLAIM_CODE)


# -- claiming -----------------------------------------------------------------------------


def test_a_claim_moves_the_device_into_the_persons_organization_and_leaves_its_state(
    tenant: Tenant,
) -> None:
    label = one_label(tenant)
    person = new_person(tenant.http)
    response = person.claim(label["claim_code"])
    assert response.status_code == 201, response.text
    claimed = response.json()
    assert claimed["id"] == label["device_id"]
    assert claimed["owner_organization_id"] == person.organization_id
    assert claimed["state"] == "defined"  # claimed before it ever connected

    device = as_maker(tenant, label["device_id"])
    assert (device["owner_organization_id"], device["state"]) == (person.organization_id, "defined")
    assert device["organization_id"] == tenant.organization_id  # the maker still made it
    assert person.get(f"{API}/devices/{label['device_id']}").json()["owner_organization_id"] == (
        person.organization_id
    )
    assert owned_ids(person) == [label["device_id"]]


def test_a_claimed_device_cannot_be_claimed_by_anyone_else(tenant: Tenant) -> None:
    label = one_label(tenant)
    owner, latecomer = new_person(tenant.http), new_person(tenant.http)
    assert owner.claim(label["claim_code"]).status_code == 201
    assert "already been claimed" in assert_problem(latecomer.claim(label["claim_code"]), 409)["detail"]
    assert_problem(tenant.post(f"{API}/claims", json={"code": label["claim_code"]}), 409)
    assert as_maker(tenant, label["device_id"])["owner_organization_id"] == owner.organization_id
    assert owned_ids(latecomer) == []


def test_the_owner_claiming_again_changes_nothing(tenant: Tenant) -> None:
    label = one_label(tenant)
    owner = new_person(tenant.http)
    first = owner.claim(label["claim_code"])
    again = owner.claim(label["claim_code"])
    assert first.status_code == again.status_code == 201, again.text
    assert again.json()["owner_organization_id"] == owner.organization_id
    assert event_types(tenant, label["device_id"]) == ["device.claimed"]


def test_of_concurrent_claims_of_one_code_exactly_one_wins(tenant: Tenant) -> None:
    label = one_label(tenant)
    people = [new_person(tenant.http) for _ in range(CONCURRENT_CLAIMANTS)]
    start = threading.Barrier(CONCURRENT_CLAIMANTS)
    base_url = str(tenant.http.base_url)

    def claim(person: Person) -> int:
        with httpx.Client(base_url=base_url, timeout=30.0) as own:
            start.wait(timeout=30)
            return own.post(
                f"{API}/claims", json={"code": label["claim_code"]}, headers=person.headers
            ).status_code

    with ThreadPoolExecutor(CONCURRENT_CLAIMANTS) as pool:
        statuses = list(pool.map(claim, people))

    assert sorted(statuses) == [201] + [409] * (CONCURRENT_CLAIMANTS - 1)
    winner = people[statuses.index(201)]
    assert as_maker(tenant, label["device_id"])["owner_organization_id"] == winner.organization_id
    assert event_types(tenant, label["device_id"]) == ["device.claimed"]
    assert [owned_ids(person) for person in people].count([label["device_id"]]) == 1


@pytest.mark.parametrize(
    "code",
    [
        unknown_code(),
        "lsc_" + "a" * 26,
        "lsc_",
        "lsd_" + "a" * 43,
        "not a code",
        "lsc_\x00" + "a" * 25,
        "x" * 200,
    ],
    ids=["well formed", "right shape", "prefix only", "a device token's prefix", "prose", "a NUL", "long"],
)
def test_a_code_that_belongs_to_no_device_is_not_found(tenant: Tenant, code: str) -> None:
    assert "No device" in assert_problem(new_person(tenant.http).claim(code), 404)["detail"]


@pytest.mark.parametrize("organization_id", ["not-a-uuid", "a\x00b"], ids=["not an id", "a NUL"])
def test_claiming_into_an_organization_that_is_not_an_id_is_not_found(
    tenant: Tenant, organization_id: str
) -> None:
    label = one_label(tenant)
    body = {"code": label["claim_code"], "organization_id": organization_id}
    assert_problem(new_person(tenant.http).post(f"{API}/claims", json=body), 404)
    headers = {"X-Forwarded-For": unique_address()}
    assert_problem(tenant.post(f"{API}/claims", json=body, headers=headers), 404)
    assert as_maker(tenant, label["device_id"])["owner_organization_id"] is None


# -- after the sale -------------------------------------------------------------------------


def test_the_owner_can_give_a_device_up_and_the_same_code_claims_it_again(tenant: Tenant) -> None:
    label = one_label(tenant)
    owner, next_owner = new_person(tenant.http), new_person(tenant.http)
    assert owner.claim(label["claim_code"]).status_code == 201

    given_up = owner.delete(f"{API}/devices/{label['device_id']}/claim")
    assert given_up.status_code == 200, given_up.text
    assert given_up.json()["owner_organization_id"] is None
    assert as_maker(tenant, label["device_id"])["owner_organization_id"] is None
    assert owned_ids(owner) == []
    assert_problem(owner.get(f"{API}/devices/{label['device_id']}"), 404)
    assert_problem(owner.delete(f"{API}/devices/{label['device_id']}/claim"), 404)

    assert next_owner.claim(label["claim_code"]).status_code == 201
    assert as_maker(tenant, label["device_id"])["owner_organization_id"] == next_owner.organization_id


def test_the_maker_can_disclaim_a_claimed_device_and_the_code_claims_it_again(tenant: Tenant) -> None:
    label = one_label(tenant)
    owner = new_person(tenant.http)
    assert owner.claim(label["claim_code"]).status_code == 201

    taken_back = tenant.post(f"{API}/devices/{label['device_id']}/disclaim")
    assert taken_back.status_code == 200, taken_back.text
    assert taken_back.json()["owner_organization_id"] is None
    assert owned_ids(owner) == []
    assert_problem(tenant.post(f"{API}/devices/{label['device_id']}/disclaim"), 409)  # nothing to take back
    assert owner.claim(label["claim_code"]).status_code == 201


def test_a_deleted_device_is_refused_leaves_its_owner_and_its_code_says_gone(tenant: Tenant) -> None:
    batch = static_batch(tenant, 1)
    [exported] = exported_rows(tenant, batch)
    [label] = label_rows(tenant, batch)
    device_auth = {"Authorization": f"Bearer {exported['device_token']}"}
    assert tenant.http.get("/device/v1/me", headers=device_auth).status_code == 200
    owner = new_person(tenant.http)
    assert owner.claim(label["claim_code"]).status_code == 201

    assert tenant.delete(f"{API}/devices/{label['device_id']}").status_code == 204
    assert_problem(tenant.http.get("/device/v1/me", headers=device_auth), 401)
    assert owned_ids(owner) == []
    assert_problem(owner.get(f"{API}/devices/{label['device_id']}"), 404)
    assert_problem(tenant.get(f"{API}/devices/{label['device_id']}"), 404)
    assert "deleted" in assert_problem(owner.claim(label["claim_code"]), 410)["detail"]
    assert_problem(new_person(tenant.http).claim(label["claim_code"]), 410)


def test_claiming_giving_up_disclaiming_and_deleting_are_audited_without_secrets(tenant: Tenant) -> None:
    label = one_label(tenant)
    owner = new_person(tenant.http)
    assert owner.claim(label["claim_code"]).status_code == 201
    assert owner.delete(f"{API}/devices/{label['device_id']}/claim").status_code == 200
    assert owner.claim(label["claim_code"]).status_code == 201
    assert tenant.post(f"{API}/devices/{label['device_id']}/disclaim").status_code == 200
    assert tenant.delete(f"{API}/devices/{label['device_id']}").status_code == 204

    assert event_types(tenant, label["device_id"]) == [
        "device.claimed",
        "device.unclaimed",
        "device.claimed",
        "device.disclaimed",
        "device.deleted",
    ]
    log = tenant.get(f"{API}/audit-events", params={"limit": 1000})
    assert log.status_code == 200
    text = json.dumps(log.json())
    assert not [prefix for prefix in SECRET_PREFIXES if prefix in text]
    assert label["claim_code"][4:] not in text and owner.token[4:] not in text
    claimed = next(e for e in log.json()["items"] if e["type"] == "device.claimed")
    assert claimed["data"]["owner_organization_id"] == owner.organization_id
    assert claimed["actor"] == f"user:{owner.user_id}"


# -- who may do what to a claimed device ----------------------------------------------------


def test_an_owner_may_read_a_claimed_device_but_not_manage_it(tenant: Tenant) -> None:
    product = tenant.product()
    batch = static_batch(tenant, 1, product["id"])
    [label] = label_rows(tenant, batch)
    owner = new_person(tenant.http)
    assert owner.claim(label["claim_code"]).status_code == 201
    device = f"{API}/devices/{label['device_id']}"
    batch_path = f"{API}/static-token-batches/{batch['batch_id']}"

    assert owner.get(device).status_code == 200
    assert_problem(owner.post(f"{device}/credentials", json={"type": "token"}), 404)
    assert_problem(owner.post(f"{device}/revoke"), 404)
    assert_problem(owner.post(f"{device}/disclaim"), 404)
    assert_problem(owner.delete(device), 404)
    assert_problem(owner.get(f"{API}/products/{product['id']}"), 404)
    assert owner.get(f"{API}/products").json()["items"] == []
    assert_problem(owner.post(f"{API}/products/{product['id']}/static-tokens", json={"count": 1}), 404)
    for path in ("", "/export.zip", "/labels.zip", "/labels.pdf"):
        assert_problem(owner.get(batch_path + path), 404)
    assert_problem(owner.post(f"{batch_path}/regenerate"), 404)

    seen = as_maker(tenant, label["device_id"])
    assert (seen["state"], seen["owner_organization_id"], seen["token_issued_at"]) == (
        "defined",
        owner.organization_id,
        None,
    )
    assert tenant.get(path_of(batch["export_url"])).status_code == 200  # its one export is intact


def test_nobody_but_the_owner_can_give_a_device_up(tenant: Tenant, make_tenant: Callable[[], Tenant]) -> None:
    label = one_label(tenant)
    owner, somebody = new_person(tenant.http), new_person(tenant.http)
    assert owner.claim(label["claim_code"]).status_code == 201
    path = f"{API}/devices/{label['device_id']}/claim"

    assert_problem(somebody.delete(path), 404)
    assert_problem(make_tenant().delete(path), 404)
    assert_problem(somebody.post(f"{API}/devices/{label['device_id']}/disclaim"), 404)
    assert_problem(somebody.get(f"{API}/devices/{label['device_id']}"), 404)
    assert as_maker(tenant, label["device_id"])["owner_organization_id"] == owner.organization_id
