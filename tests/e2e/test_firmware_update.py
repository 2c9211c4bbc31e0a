"""An over-the-air update through a real ``lineside serve``: upload an image, deploy it to the
device's group, and the device downloads it, checks it and reports the version it runs."""

from __future__ import annotations

import hashlib

from lineside.bootstrap import Application
from tests.support.api import Tenant
from tests.support.firmware import as_device, deployed, firmware_of, group, image_bytes, member, release
from tests.support.people import path_of


def test_a_device_is_updated_by_deploying_a_release_to_its_group(
    application: Application, tenant: Tenant
) -> None:
    product = tenant.product()["id"]
    development = group(tenant, product, "development")["id"]
    token = member(application, tenant, product, development)
    image = image_bytes(5 * 1024 * 1024)
    deployed(tenant, development, release(tenant, product, version="1.0.0", image=image)["id"])

    told = firmware_of(tenant.http, token)
    assert (told["release"]["version"], told["update_available"]) == ("1.0.0", True)
    download = as_device(tenant.http, token, "GET", path_of(told["release"]["url"]))
    assert download.status_code == 200
    assert hashlib.sha256(download.content).hexdigest() == told["release"]["sha256"]
    reported = as_device(tenant.http, token, "POST", "/device/v1/firmware", json={"version": "1.0.0"})
    assert reported.json()["update_available"] is False

    deployed(tenant, development, release(tenant, product, version="1.0.1")["id"])

    assert firmware_of(tenant.http, token)["release"]["version"] == "1.0.1"
    assert firmware_of(tenant.http, token)["update_available"] is True
