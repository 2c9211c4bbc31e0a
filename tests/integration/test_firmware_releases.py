"""Firmware by device group: upload releases, deploy them to groups, and what devices are told.

A release is deployed to a group, never to a device; every member runs the group's release,
except that a production group set to load application firmware after *activation* keeps
its not-yet-activated members on the product's factory firmware.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from lineside.bootstrap import Application
from lineside.domain.lifecycle import DeviceState
from tests.support.api import Tenant, assert_problem, unique
from tests.support.firmware import (
    API,
    OCTET_STREAM,
    as_device,
    deploy,
    deployed,
    firmware_of,
    group,
    image_bytes,
    member,
    place,
    release,
    running,
    set_after,
    upload,
)
from tests.support.people import path_of


def events_of(tenant: Tenant, event_type: str, subject_id: str) -> list[dict[str, object]]:
    response = tenant.get(f"{API}/audit-events", params={"type": event_type, "subject_id": subject_id})
    assert response.status_code == 200, response.text
    items: list[dict[str, object]] = response.json()["items"]
    return items


# -- releases ------------------------------------------------------------------------------------


def test_an_uploaded_release_keeps_its_bytes_and_their_sha256(tenant: Tenant, data_dir: Path) -> None:
    product = tenant.product()["id"]
    image = image_bytes(3 * 1024 * 1024 + 17)  # more than one write to disk
    response = upload(tenant, product, image, kind="factory", version="1.2.0", notes="first line run")

    assert response.status_code == 201, response.text
    created = response.json()
    assert created["product_id"] == product
    assert (created["kind"], created["version"], created["notes"]) == ("factory", "1.2.0", "first line run")
    assert created["sha256"] == hashlib.sha256(image).hexdigest()
    assert created["size_bytes"] == len(image)
    assert (data_dir / "firmware" / created["sha256"]).read_bytes() == image
    assert tenant.get(f"{API}/firmware-releases/{created['id']}").json() == created


def test_a_release_image_downloads_with_its_sha256_as_etag(tenant: Tenant) -> None:
    product = tenant.product()["id"]
    image = image_bytes(200_000)
    created = release(tenant, product, image=image)

    response = tenant.get(f"{API}/firmware-releases/{created['id']}/image")

    assert response.status_code == 200
    assert response.content == image
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-length"] == str(len(image))
    assert response.headers["etag"] == f'"{hashlib.sha256(image).hexdigest()}"'
    again = tenant.get(
        f"{API}/firmware-releases/{created['id']}/image", headers={"If-None-Match": response.headers["etag"]}
    )
    assert again.status_code == 304 and again.content == b""


def test_releases_are_listed_newest_first_and_by_kind(tenant: Tenant) -> None:
    product = tenant.product()["id"]
    first = release(tenant, product, kind="factory")
    second = release(tenant, product, kind="application")
    third = release(tenant, product, kind="application")

    listed = tenant.get(f"{API}/products/{product}/firmware-releases").json()
    applications = tenant.get(f"{API}/products/{product}/firmware-releases", params={"kind": "application"})

    assert [r["id"] for r in listed] == [third["id"], second["id"], first["id"]]
    assert [r["id"] for r in applications.json()] == [third["id"], second["id"]]


def test_an_image_sent_in_chunks_without_a_length_is_stored_whole(tenant: Tenant) -> None:
    product = tenant.product()["id"]
    image = image_bytes(300_000)
    pieces = iter([image[:1000], image[1000:250_000], image[250_000:]])
    path = f"{API}/products/{product}/firmware-releases"

    response = tenant.post(
        path, params={"kind": "application", "version": "7"}, content=pieces, headers=OCTET_STREAM
    )

    assert response.status_code == 201, response.text
    assert response.json()["sha256"] == hashlib.sha256(image).hexdigest()
    assert tenant.get(f"{API}/firmware-releases/{response.json()['id']}/image").content == image


def test_the_same_bytes_uploaded_twice_are_stored_once(tenant: Tenant, data_dir: Path) -> None:
    product = tenant.product()["id"]
    image = image_bytes()
    one = release(tenant, product, kind="factory", image=image)
    two = release(tenant, product, kind="application", image=image)

    assert one["sha256"] == two["sha256"]
    stored = sorted(path.name for path in (data_dir / "firmware").iterdir())
    assert stored.count(one["sha256"]) == 1
    assert not [name for name in stored if name.startswith(".")], "no temporary file is left behind"


def test_a_version_is_released_once_per_product_and_kind(tenant: Tenant) -> None:
    product = tenant.product()["id"]
    release(tenant, product, kind="application", version="2.0.0")

    assert_problem(upload(tenant, product, image_bytes(), kind="application", version="2.0.0"), 409)
    assert upload(tenant, product, image_bytes(), kind="factory", version="2.0.0").status_code == 201
    assert upload(tenant, tenant.product()["id"], image_bytes(), version="2.0.0").status_code == 201
    listed = tenant.get(f"{API}/products/{product}/firmware-releases").json()
    assert sorted(r["kind"] for r in listed) == ["application", "factory"]


def test_uploads_of_one_version_at_the_same_time_release_it_once(tenant: Tenant) -> None:
    product = tenant.product()["id"]

    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda _: upload(tenant, product, image_bytes(), version="8.0"), range(4)))

    assert sorted(answer.status_code for answer in answers) == [201, 409, 409, 409]
    assert [r["version"] for r in tenant.get(f"{API}/products/{product}/firmware-releases").json()] == ["8.0"]


def test_an_empty_image_is_refused_with_400(tenant: Tenant) -> None:
    product = tenant.product()["id"]

    assert_problem(upload(tenant, product, b""), 400)
    assert tenant.get(f"{API}/products/{product}/firmware-releases").json() == []


@pytest.mark.parametrize("version", ["", "1.0 beta", "x" * 65, "1.0\t", "1.0\x7f"])
def test_a_version_must_be_printable_without_spaces(tenant: Tenant, version: str) -> None:
    product = tenant.product()["id"]

    assert_problem(upload(tenant, product, image_bytes(), version=version), 422)
    assert tenant.get(f"{API}/products/{product}/firmware-releases").json() == []


def test_an_upload_needs_a_known_kind_and_an_octet_stream(tenant: Tenant) -> None:
    product = tenant.product()["id"]
    path = f"{API}/products/{product}/firmware-releases"

    assert_problem(upload(tenant, product, image_bytes(), kind="bootloader"), 422)
    as_json = tenant.post(path, params={"kind": "factory", "version": "1"}, json={"image": "AAAA"})
    assert_problem(as_json, 422)
    no_version = tenant.post(path, params={"kind": "factory"}, content=b"x", headers=OCTET_STREAM)
    assert_problem(no_version, 422)


def test_a_read_scope_key_lists_and_downloads_but_cannot_upload_or_deploy(tenant: Tenant) -> None:
    product = tenant.product()["id"]
    production = group(tenant, product, "production")["id"]
    created = release(tenant, product)
    key = tenant.created(f"{API}/api-keys", {"name": unique("reader"), "scopes": ["read"]})["key"]
    reader = Tenant(tenant.http, tenant.organization_id, key)

    assert_problem(upload(reader, product, image_bytes()), 403)
    assert_problem(deploy(reader, production, created["id"]), 403)
    assert_problem(set_after(reader, production, "activation"), 403)
    listed = reader.get(f"{API}/products/{product}/firmware-releases").json()
    assert [r["id"] for r in listed] == [created["id"]]
    assert reader.get(f"{API}/firmware-releases/{created['id']}/image").status_code == 200
    assert reader.get(f"{API}/device-groups/{production}").json()["release_id"] is None


def test_a_release_upload_is_an_event(tenant: Tenant) -> None:
    product = tenant.product()["id"]
    created = release(tenant, product, version="3.1.4")

    [event] = events_of(tenant, "firmware.released", created["id"])
    assert event["data"] == {
        "product_id": product,
        "kind": "application",
        "version": "3.1.4",
        "sha256": created["sha256"],
        "size_bytes": created["size_bytes"],
    }


# -- deployments ---------------------------------------------------------------------------------


def test_a_deployment_reaches_every_member_of_the_group(
    application: Application, tenant: Tenant, client: httpx.Client
) -> None:
    product = tenant.product()["id"]
    production = group(tenant, product, "production")["id"]
    members = [member(application, tenant, product, production) for _ in range(3)]
    outsider = member(application, tenant, product, None)
    assert [running(client, token) for token in members] == [None, None, None]

    created = release(tenant, product, version="1.0.0")
    deployment = deployed(tenant, production, created["id"])

    assert deployment["group_id"] == production and deployment["release_id"] == created["id"]
    for token in members:
        told = firmware_of(client, token)
        assert told["release"] == {
            "id": created["id"],
            "kind": "application",
            "version": "1.0.0",
            "sha256": created["sha256"],
            "size_bytes": created["size_bytes"],
            "url": f"{application.services.config.public_url}/device/v1/firmware/{created['id']}/image",
        }
        assert told["installed_version"] is None and told["update_available"] is True
    nothing = {"release": None, "installed_version": None, "update_available": False}
    assert firmware_of(client, outsider) == nothing


def test_a_new_deployment_replaces_the_group_release_and_keeps_history(
    application: Application, tenant: Tenant, client: httpx.Client
) -> None:
    product = tenant.product()["id"]
    production = group(tenant, product, "production")["id"]
    token = member(application, tenant, product, production)
    first = release(tenant, product, version="1.0.0")
    second = release(tenant, product, version="1.1.0")

    one = deployed(tenant, production, first["id"])
    two = deployed(tenant, production, second["id"])

    assert running(client, token) == "1.1.0"
    shown = tenant.get(f"{API}/device-groups/{production}").json()
    assert shown["release_id"] == second["id"] and shown["release"]["version"] == "1.1.0"
    history = tenant.get(f"{API}/device-groups/{production}/deployments").json()
    assert [d["id"] for d in history] == [two["id"], one["id"]]
    assert [d["release_id"] for d in history] == [second["id"], first["id"]]
    listed = tenant.get(f"{API}/products/{product}/groups").json()
    assert [g["release_id"] for g in listed] == [second["id"]]


def test_a_deployment_is_an_event_counting_the_members(application: Application, tenant: Tenant) -> None:
    product = tenant.product()["id"]
    production = group(tenant, product, "production")
    for _ in range(2):
        member(application, tenant, product, production["id"])
    created = release(tenant, product, version="4.0")

    deployment = deployed(tenant, production["id"], created["id"])

    [event] = events_of(tenant, "firmware.deployed", production["id"])
    assert event["data"] == {
        "deployment_id": deployment["id"],
        "group_id": production["id"],
        "group_name": production["name"],
        "release_id": created["id"],
        "kind": "application",
        "version": "4.0",
        "member_count": 2,
    }


def test_factory_firmware_deploys_only_to_factory_groups_and_application_firmware_elsewhere(
    tenant: Tenant,
) -> None:
    product = tenant.product()["id"]
    groups = {kind: group(tenant, product, kind)["id"] for kind in ("factory", "production", "development")}
    factory = release(tenant, product, kind="factory")
    application = release(tenant, product, kind="application")

    assert "factory" in assert_problem(deploy(tenant, groups["production"], factory["id"]), 409)["detail"]
    assert_problem(deploy(tenant, groups["development"], factory["id"]), 409)
    assert_problem(deploy(tenant, groups["factory"], application["id"]), 409)
    assert deploy(tenant, groups["factory"], factory["id"]).status_code == 201
    assert deploy(tenant, groups["production"], application["id"]).status_code == 201
    assert deploy(tenant, groups["development"], application["id"]).status_code == 201


def test_a_release_deploys_only_to_groups_of_its_own_product(tenant: Tenant) -> None:
    product, other = tenant.product()["id"], tenant.product()["id"]
    production = group(tenant, product, "production")["id"]
    foreign = release(tenant, other)

    assert_problem(deploy(tenant, production, foreign["id"]), 409)
    assert tenant.get(f"{API}/device-groups/{production}").json()["release_id"] is None
    assert tenant.get(f"{API}/device-groups/{production}/deployments").json() == []


def test_deploying_an_unknown_release_or_to_an_unknown_group_is_404(tenant: Tenant) -> None:
    product = tenant.product()["id"]
    production = group(tenant, product, "production")["id"]
    created = release(tenant, product)

    assert_problem(deploy(tenant, production, "not-a-release"), 404)
    assert_problem(deploy(tenant, "01890000-0000-7000-8000-000000000000", created["id"]), 404)
    assert_problem(tenant.post(f"{API}/device-groups/{production}/deployments", json={}), 422)


# -- application firmware after blessing or after activation -------------------------------------


def _line_and_field(tenant: Tenant) -> tuple[str, str, str]:
    """A product with factory firmware 0.9-line on its factory group and application firmware
    2.0 on its production group: (product, factory group, production group)."""
    product = tenant.product()["id"]
    factory, production = group(tenant, product, "factory")["id"], group(tenant, product, "production")["id"]
    deployed(tenant, factory, release(tenant, product, kind="factory", version="0.9-line")["id"])
    deployed(tenant, production, release(tenant, product, version="2.0")["id"])
    return product, factory, production


def test_after_blessing_a_blessed_unit_loads_application_firmware_at_once(
    application: Application, tenant: Tenant, client: httpx.Client
) -> None:
    product, factory, production = _line_and_field(tenant)
    on_the_line = member(application, tenant, product, factory, state=DeviceState.UNDER_TEST)
    blessed = member(application, tenant, product, production, state=DeviceState.BLESSED)

    assert tenant.get(f"{API}/device-groups/{production}").json()["application_firmware_after"] == "blessing"
    assert running(client, on_the_line) == "0.9-line"
    assert running(client, blessed) == "2.0"


def test_after_activation_a_blessed_unit_keeps_factory_firmware_until_activated(
    application: Application, tenant: Tenant, client: httpx.Client
) -> None:
    product, _, production = _line_and_field(tenant)
    changed = set_after(tenant, production, "activation")
    assert changed.status_code == 200, changed.text
    assert changed.json()["application_firmware_after"] == "activation"
    audited = tenant.get(
        "/api/v1/audit-events", params={"type": "device_group.updated", "subject_id": production}
    )
    assert [e["data"] for e in audited.json()["items"]] == [{"application_firmware_after": "activation"}]
    device_id = tenant.device(product)["id"]
    token = tenant.token(device_id)
    place(application, device_id, production, DeviceState.BLESSED)

    assert running(client, token) == "0.9-line"
    place(application, device_id, production, DeviceState.ACTIVATED)
    assert running(client, token) == "2.0"


def test_after_activation_without_known_factory_firmware_a_blessed_unit_is_told_nothing(
    application: Application, tenant: Tenant, client: httpx.Client
) -> None:
    product = tenant.product()["id"]
    production = group(tenant, product, "production")["id"]
    deployed(tenant, production, release(tenant, product)["id"])
    assert set_after(tenant, production, "activation").status_code == 200

    blessed = member(application, tenant, product, production, state=DeviceState.BLESSED)

    assert firmware_of(client, blessed)["release"] is None


def test_only_a_production_group_can_wait_for_activation(tenant: Tenant) -> None:
    product = tenant.product()["id"]
    factory, production = group(tenant, product, "factory")["id"], group(tenant, product, "production")["id"]

    assert_problem(set_after(tenant, factory, "activation"), 409)
    assert_problem(set_after(tenant, production, "later"), 422)
    assert set_after(tenant, production, "activation").status_code == 200
    assert set_after(tenant, production, "blessing").json()["application_firmware_after"] == "blessing"


# -- the device side -----------------------------------------------------------------------------


def test_a_device_downloads_its_image_and_reports_the_version_it_installed(
    application: Application, tenant: Tenant, client: httpx.Client
) -> None:
    product = tenant.product()["id"]
    development = group(tenant, product, "development")["id"]
    image = image_bytes(100_000)
    deployed(tenant, development, release(tenant, product, version="5.0-rc1", image=image)["id"])
    token = member(application, tenant, product, development)
    told = firmware_of(client, token)["release"]

    download = as_device(client, token, "GET", path_of(told["url"]))
    assert download.status_code == 200 and download.content == image
    assert hashlib.sha256(download.content).hexdigest() == told["sha256"]
    assert download.headers["etag"] == f'"{told["sha256"]}"'
    reported = as_device(client, token, "POST", "/device/v1/firmware", json={"version": "5.0-rc1"})

    assert reported.status_code == 200, reported.text
    assert reported.json()["installed_version"] == "5.0-rc1"
    assert reported.json()["update_available"] is False
    assert firmware_of(client, token)["installed_version"] == "5.0-rc1"


def test_a_reported_version_is_stored_on_the_device_and_is_an_event(
    application: Application, tenant: Tenant, client: httpx.Client
) -> None:
    product = tenant.product()["id"]
    device_id = tenant.device(product)["id"]
    token = tenant.token(device_id)

    as_device(client, token, "POST", "/device/v1/firmware", json={"version": "1.0"})
    as_device(client, token, "POST", "/device/v1/firmware", json={"version": "1.1"})

    with application.services.unit_of_work(write=False) as uow:
        device = uow.devices.get(device_id, within="/")
    assert device is not None and device.firmware_version == "1.1"
    assert device.firmware_reported_at is not None
    reports = events_of(tenant, "device.firmware_reported", device_id)
    assert [e["data"] for e in reports] == [
        {"version": "1.0", "previous_version": None},
        {"version": "1.1", "previous_version": "1.0"},
    ]


@pytest.mark.parametrize("body", [{"version": "has space"}, {"version": ""}, {"version": 3}, {}, {"v": "1"}])
def test_a_device_reports_a_valid_version_or_is_refused(
    tenant: Tenant, client: httpx.Client, body: dict[str, object]
) -> None:
    device_id = tenant.device(tenant.product()["id"])["id"]
    token = tenant.token(device_id)

    assert_problem(as_device(client, token, "POST", "/device/v1/firmware", json=body), 422)
    assert firmware_of(client, token)["installed_version"] is None


def test_a_device_may_download_any_release_of_its_product_but_not_another_products(
    application: Application, tenant: Tenant, client: httpx.Client
) -> None:
    product, other = tenant.product()["id"], tenant.product()["id"]
    own = release(tenant, product, kind="factory")
    foreign = release(tenant, other)
    token = member(application, tenant, product, None)

    assert as_device(client, token, "GET", f"/device/v1/firmware/{own['id']}/image").status_code == 200
    assert_problem(as_device(client, token, "GET", f"/device/v1/firmware/{foreign['id']}/image"), 404)
    assert_problem(as_device(client, token, "GET", "/device/v1/firmware/not-an-id/image"), 404)


def test_the_device_firmware_api_needs_a_device_token(tenant: Tenant, client: httpx.Client) -> None:
    created = release(tenant, tenant.product()["id"])

    assert_problem(client.get("/device/v1/firmware"), 401)
    assert_problem(as_device(client, tenant.api_key, "GET", "/device/v1/firmware"), 401)
    assert_problem(as_device(client, "lsd_forged", "GET", f"/device/v1/firmware/{created['id']}/image"), 401)
    assert_problem(client.post("/device/v1/firmware", json={"version": "1"}), 401)
