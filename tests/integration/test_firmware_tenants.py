"""Firmware and tenants: another organization's releases, images and groups look missing (404),
and nothing of theirs changes; a device downloads only its own product's images."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import httpx
import pytest

from lineside.bootstrap import Application
from tests.support.api import Tenant, assert_problem
from tests.support.firmware import (
    API,
    as_device,
    deploy,
    deployed,
    group,
    image_bytes,
    member,
    release,
    running,
    set_after,
    upload,
)


@dataclass(frozen=True)
class Firmware:
    """One organization's product with a production group running a release."""

    owner: Tenant
    product_id: str
    group_id: str
    release_id: str
    spare_release_id: str  # uploaded, not deployed


def firmware_of_a_tenant(tenant: Tenant) -> Firmware:
    product = tenant.product()["id"]
    production = group(tenant, product, "production")["id"]
    running_release = release(tenant, product, version="1.0")["id"]
    deployed(tenant, production, running_release)
    spare = release(tenant, product, version="1.1")["id"]
    return Firmware(tenant, product, production, running_release, spare)


@pytest.fixture
def theirs(make_tenant: Callable[[], Tenant]) -> Firmware:
    return firmware_of_a_tenant(make_tenant())


def unchanged(firmware: Firmware) -> None:
    """Their group still runs their release, with one deployment, and they have two releases."""
    owner = firmware.owner
    shown = owner.get(f"{API}/device-groups/{firmware.group_id}").json()
    assert (shown["release_id"], shown["application_firmware_after"]) == (firmware.release_id, "blessing")
    assert len(owner.get(f"{API}/device-groups/{firmware.group_id}/deployments").json()) == 1
    assert len(owner.get(f"{API}/products/{firmware.product_id}/firmware-releases").json()) == 2


CALLS: dict[str, Callable[[Tenant, Firmware], httpx.Response]] = {
    "list releases": lambda me, f: me.get(f"{API}/products/{f.product_id}/firmware-releases"),
    "get release": lambda me, f: me.get(f"{API}/firmware-releases/{f.release_id}"),
    "download image": lambda me, f: me.get(f"{API}/firmware-releases/{f.release_id}/image"),
    "upload": lambda me, f: upload(me, f.product_id, image_bytes(), version="9.9"),
    "get group": lambda me, f: me.get(f"{API}/device-groups/{f.group_id}"),
    "set group": lambda me, f: set_after(me, f.group_id, "activation"),
    "list deployments": lambda me, f: me.get(f"{API}/device-groups/{f.group_id}/deployments"),
    "deploy to their group": lambda me, f: deploy(me, f.group_id, f.spare_release_id),
}


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
def test_another_organizations_firmware_looks_missing(
    tenant: Tenant, theirs: Firmware, call: Callable[[Tenant, Firmware], httpx.Response]
) -> None:
    assert_problem(call(tenant, theirs), 404)
    unchanged(theirs)


def test_their_release_cannot_be_deployed_to_my_group(tenant: Tenant, theirs: Firmware) -> None:
    mine = firmware_of_a_tenant(tenant)

    assert_problem(deploy(tenant, mine.group_id, theirs.spare_release_id), 404)
    assert tenant.get(f"{API}/device-groups/{mine.group_id}").json()["release_id"] == mine.release_id
    unchanged(theirs)


def test_my_device_cannot_download_their_image(
    application: Application, tenant: Tenant, theirs: Firmware, client: httpx.Client
) -> None:
    mine = firmware_of_a_tenant(tenant)
    token = member(application, tenant, mine.product_id, mine.group_id)

    assert running(client, token) == "1.0"
    for release_id in (theirs.release_id, theirs.spare_release_id):
        assert_problem(as_device(client, token, "GET", f"/device/v1/firmware/{release_id}/image"), 404)
    assert as_device(client, token, "GET", f"/device/v1/firmware/{mine.release_id}/image").status_code == 200


def test_a_parent_sees_its_sub_organizations_firmware_but_not_the_other_way(tenant: Tenant) -> None:
    child = tenant.sub_tenant()
    childs = firmware_of_a_tenant(child)
    parents = firmware_of_a_tenant(tenant)

    listed = tenant.get(f"{API}/products/{childs.product_id}/firmware-releases").json()
    assert {r["id"] for r in listed} == {childs.release_id, childs.spare_release_id}
    assert deploy(tenant, childs.group_id, childs.spare_release_id).status_code == 201
    assert_problem(child.get(f"{API}/firmware-releases/{parents.release_id}"), 404)
    assert_problem(deploy(child, parents.group_id, parents.spare_release_id), 404)
    assert_problem(deploy(child, childs.group_id, parents.spare_release_id), 404)


@pytest.mark.parametrize("identifier", ["not-a-uuid", "01890000-0000-7000-8000-000000000000"])
def test_unknown_identifiers_are_404(tenant: Tenant, identifier: str) -> None:
    assert_problem(tenant.get(f"{API}/firmware-releases/{identifier}"), 404)
    assert_problem(tenant.get(f"{API}/firmware-releases/{identifier}/image"), 404)
    assert_problem(tenant.get(f"{API}/device-groups/{identifier}"), 404)
    assert_problem(tenant.get(f"{API}/device-groups/{identifier}/deployments"), 404)
    assert_problem(set_after(tenant, identifier, "blessing"), 404)
    assert_problem(upload(tenant, identifier, image_bytes()), 404)
