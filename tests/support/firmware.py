"""Firmware for tests: upload releases, make groups, put devices in them, ask as a device."""

from __future__ import annotations

import secrets
from typing import Any

import httpx

from lineside.bootstrap import Application
from lineside.domain.lifecycle import DeviceState
from tests.support.api import Tenant, unique

API = "/api/v1"
OCTET_STREAM = {"Content-Type": "application/octet-stream"}


def image_bytes(size: int = 4096) -> bytes:
    return secrets.token_bytes(size)


def upload(
    tenant: Tenant,
    product_id: str,
    image: bytes,
    *,
    kind: str = "application",
    version: str | None = None,
    **params: str,
) -> httpx.Response:
    query = {"kind": kind, "version": unique("v") if version is None else version, **params}
    return tenant.post(
        f"{API}/products/{product_id}/firmware-releases", params=query, content=image, headers=OCTET_STREAM
    )


def release(tenant: Tenant, product_id: str, kind: str = "application", **kwargs: Any) -> dict[str, Any]:
    """A release uploaded with fresh random bytes unless ``image`` is given."""
    image = kwargs.pop("image", None) or image_bytes()
    response = upload(tenant, product_id, image, kind=kind, **kwargs)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def group(tenant: Tenant, product_id: str, kind: str) -> dict[str, Any]:
    return tenant.created(f"{API}/products/{product_id}/groups", {"name": unique(kind), "kind": kind})


def deploy(tenant: Tenant, group_id: str, release_id: str) -> httpx.Response:
    return tenant.post(f"{API}/device-groups/{group_id}/deployments", json={"release_id": release_id})


def deployed(tenant: Tenant, group_id: str, release_id: str) -> dict[str, Any]:
    response = deploy(tenant, group_id, release_id)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def set_after(tenant: Tenant, group_id: str, after: str) -> httpx.Response:
    return tenant.http.patch(
        f"{API}/device-groups/{group_id}",
        json={"application_firmware_after": after},
        headers=tenant.headers,
    )


def place(
    application: Application, device_id: str, group_id: str | None, state: DeviceState | None = None
) -> None:
    """Put a device in a group (and a state) directly, as the factory's blessing step would."""
    with application.services.unit_of_work() as uow:
        device = uow.devices.get(device_id, within="/")
        assert device is not None
        previous = device.state
        device.group_id = group_id
        device.state = state or device.state
        assert uow.devices.save_state_if(device, previous)
        uow.commit()


def member(
    application: Application, tenant: Tenant, product_id: str, group_id: str | None, **kwargs: Any
) -> str:
    """A new device of the product, placed in the group; answers its device token."""
    device_id = tenant.device(product_id)["id"]
    token = tenant.token(device_id)
    place(application, device_id, group_id, kwargs.get("state"))
    return token


def as_device(http: httpx.Client, token: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return http.request(method, path, headers={"Authorization": f"Bearer {token}"}, **kwargs)


def firmware_of(http: httpx.Client, token: str) -> dict[str, Any]:
    """What GET /device/v1/firmware tells the device."""
    response = as_device(http, token, "GET", "/device/v1/firmware")
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def running(http: httpx.Client, token: str) -> str | None:
    """The version of the release the device is told to run, None for none."""
    release = firmware_of(http, token)["release"]
    return None if release is None else str(release["version"])
