"""The device SDK (``lineside.device``) against the real API (uvicorn thread) and the real
embedded broker on a free port, on both database backends."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from lineside.bootstrap import Application
from lineside.device import (
    ConnectionRefused,
    CredentialsType,
    DeviceClient,
    FirmwareMismatch,
    Flash,
    FlashContents,
    FlashError,
    NotProvisioned,
    ProvisioningFailed,
    Refused,
    provision,
)
from lineside.domain.mqtt import device_topic
from tests.support.api import Tenant, ok, unique
from tests.support.factory import factory_token, line_unit, production_token
from tests.support.mqtt import embedded_broker, wait_for

API = "/api/v1"


@pytest.fixture(scope="module")
def broker(application: Application) -> Iterator[tuple[str, int]]:
    with embedded_broker(application) as address:
        yield address


def flash_for(tmp_path: Path, client: httpx.Client, broker: tuple[str, int], **values: Any) -> Flash:
    host, port = broker
    contents = FlashContents(server_url=str(client.base_url), mqtt_host=host, mqtt_port=port, **values)
    return Flash(tmp_path / "flash" / "lineside.json", contents)


def device_state(tenant: Tenant, device_id: str) -> str:
    state: str = ok(tenant.get(f"{API}/devices/{device_id}"))["state"]
    return state


def blessed_unit(tenant: Tenant) -> tuple[dict[str, Any], str]:
    """A product that requires blessing, with a production group; one unit blessed on it."""
    product = tenant.created(f"{API}/products", {"name": unique("product"), "requires_blessing": True})
    group = tenant.created(
        f"{API}/products/{product['id']}/groups", {"name": "Production", "kind": "production"}
    )
    blessing = line_unit(tenant, factory_token(tenant, product["id"]))
    assert blessing["result"] == "blessed", blessing
    return group, blessing["device"]["id"]


# -- the flash ------------------------------------------------------------------------------


def test_the_flash_keeps_credentials_owner_only_and_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "creds.json"
    path.write_text("{}")
    path.chmod(0o644)  # a file someone made readable: the next write tightens it
    flash = Flash(path)
    flash.update(device_id="dev-1", token="lsd_secret", mqtt_port=1999)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["creds.json"], "no temporary file is left behind"
    assert json.loads(path.read_text())["token"] == "lsd_secret"

    again = Flash(path).read()
    assert (again.device_id, again.token, again.mqtt_port) == ("dev-1", "lsd_secret", 1999)
    assert again.mqtt_secret == "lsd_secret"
    assert Flash(path).update(mqtt_password="lsm_other").mqtt_secret == "lsm_other"
    assert "lsd_secret" not in repr(again) and "lsm_other" not in repr(Flash(path).read())


def test_a_new_flash_file_is_created_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dir" / "creds.json"
    Flash(path, FlashContents(device_id="d", token="t"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Flash(tmp_path / "missing.json").read() == FlashContents()


def test_fields_a_newer_sdk_wrote_survive_a_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "creds.json"
    path.write_text(json.dumps({"device_id": "d", "token": "t", "region": "eu"}))
    Flash(path).update(firmware_version="2.0")
    assert json.loads(path.read_text())["extra"] == {"region": "eu"}
    assert Flash(path).read().firmware_version == "2.0"


@pytest.mark.parametrize(
    "content", ["not json", "[1, 2]", '{"mqtt_port": "many"}', '{"bogus_field": 1, "token": 5}']
)
def test_a_damaged_flash_is_a_flash_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "creds.json"
    path.write_text(content)
    try:
        contents = Flash(path).read()
    except FlashError as error:
        assert str(path) in error.message or "flash" in error.message
        return
    # {"bogus_field": 1, "token": 5} reads (unknown fields are kept), but it has no usable token
    assert contents.extra == {"bogus_field": 1}


def test_an_empty_flash_says_what_is_missing(tmp_path: Path) -> None:
    device = DeviceClient(Flash(None), server_url="http://127.0.0.1:9")
    with pytest.raises(NotProvisioned, match="device token"):
        device.check_firmware()
    with pytest.raises(NotProvisioned, match="device id"):
        device.connect()
    with pytest.raises(FlashError, match="Not a flash field"):
        Flash(tmp_path / "x.json").update(colour="red")


# -- HTTP: activation and firmware ---------------------------------------------------------


def test_a_blessed_unit_activates_and_its_token_goes_to_flash(
    tenant: Tenant, client: httpx.Client, broker: tuple[str, int], tmp_path: Path
) -> None:
    _group, device_id = blessed_unit(tenant)
    token = production_token(tenant)
    flash = flash_for(tmp_path, client, broker, device_id=device_id)
    with DeviceClient(flash) as device:
        done = device.activate(token["plan_id"], token["token_id"])
        assert (done.device_id, done.state) == (device_id, "activated")
        assert Flash(flash.path).read().token == done.token  # written through to the file
        assert device.whoami()["state"] == "activated"
        with pytest.raises(Refused) as spent:
            device.activate(token["plan_id"], token["token_id"])
    assert 400 <= spent.value.status < 500
    assert done.token not in str(spent.value)
    assert device_state(tenant, device_id) == "activated"


def test_a_firmware_update_is_announced_checked_downloaded_verified_and_reported(
    tenant: Tenant, client: httpx.Client, broker: tuple[str, int], tmp_path: Path
) -> None:
    group, device_id = blessed_unit(tenant)
    token = production_token(tenant)
    flash = flash_for(tmp_path, client, broker, device_id=device_id)
    with DeviceClient(flash) as device:
        device.activate(token["plan_id"], token["token_id"])
        device.connect()
        image = os.urandom(50_000)
        release = tenant.post(
            f"{API}/products/{group['product_id']}/firmware-releases",
            params={"kind": "application", "version": "2.1.0"},
            content=image,
            headers={"Content-Type": "application/octet-stream"},
        ).json()
        tenant.created(f"{API}/device-groups/{group['id']}/deployments", {"release_id": release["id"]})

        notice = device.next_message(timeout=15)
        assert notice.topic == device_topic(device_id, "firmware")

        status = device.check_firmware()
        assert status.update_available and status.release is not None
        assert status.release.sha256 == hashlib.sha256(image).hexdigest()
        target = tmp_path / "update.bin"
        assert device.download_firmware(status.release, target) == image
        assert target.read_bytes() == image

        tampered = replace(status.release, sha256="0" * 64)
        with pytest.raises(FirmwareMismatch):
            device.download_firmware(tampered, tmp_path / "bad.bin")
        assert not (tmp_path / "bad.bin").exists(), "a bad image is never written"

        reported = device.report_firmware("2.1.0")
        assert reported.installed_version == "2.1.0" and not reported.update_available
        assert Flash(flash.path).read().firmware_version == "2.1.0"


# -- MQTT -------------------------------------------------------------------------------------


def test_telemetry_goes_through_the_broker_and_the_device_activates_on_connect(
    tenant: Tenant, client: httpx.Client, broker: tuple[str, int], tmp_path: Path
) -> None:
    product = tenant.product()  # does not require blessing: a defined device activates on connect
    device_id = tenant.device(product["id"])["id"]
    flash = flash_for(tmp_path, client, broker, device_id=device_id, token=tenant.token(device_id))
    with DeviceClient(flash) as device:
        device.connect()
        assert device.connected
        # The device hears its own telemetry topic: proof the broker took and routed it.
        device.link.subscribe([device_topic(device_id, "telemetry")])
        device.publish_telemetry({"temperature": 21.5})
        heard = [device.next_message()]
        while heard[-1].topic != device_topic(device_id, "telemetry"):
            heard.append(device.next_message())
        assert heard[-1].json() == {"temperature": 21.5}
        # Nothing of another device's reaches it (retained notices of others included).
        assert all(message.topic.startswith(f"devices/{device_id}/") for message in heard), heard
        wait_for(lambda: device_state(tenant, device_id) == "activated", what="activation on connect")


def test_a_wrong_password_is_refused_with_a_clear_error(
    tenant: Tenant, client: httpx.Client, broker: tuple[str, int], tmp_path: Path
) -> None:
    device_id = tenant.device(tenant.product()["id"])["id"]
    flash = flash_for(tmp_path, client, broker, device_id=device_id, token="lsd_not-the-token")
    with DeviceClient(flash) as device, pytest.raises(ConnectionRefused) as refused:
        device.connect()
    assert "lsd_not-the-token" not in str(refused.value)
    assert not device.connected
    assert device_state(tenant, device_id) == "defined"


def test_a_subscription_outside_the_device_prefix_is_refused(
    tenant: Tenant, client: httpx.Client, broker: tuple[str, int], tmp_path: Path
) -> None:
    device_id = tenant.device(tenant.product()["id"])["id"]
    flash = flash_for(tmp_path, client, broker, device_id=device_id, token=tenant.token(device_id))
    with DeviceClient(flash) as device:
        device.connect()
        with pytest.raises(ConnectionRefused, match="subscription refused"):
            device.link.subscribe(["devices/+/telemetry"])


# -- provisioning -------------------------------------------------------------------------------


def provisioning_of(tenant: Tenant) -> dict[str, Any]:
    product = tenant.product()
    return tenant.created(f"{API}/products/{product['id']}/provisioning", {})


def test_a_device_provisions_over_mqtt_then_connects_with_what_it_got(
    tenant: Tenant, client: httpx.Client, broker: tuple[str, int], tmp_path: Path
) -> None:
    settings = provisioning_of(tenant)
    flash = flash_for(tmp_path, client, broker)
    name = unique("SN")
    got = provision(
        flash,
        provision_key=settings["provision_key"],
        provision_secret=settings["provision_secret"],
        device_name=name,
    )
    stored = Flash(flash.path).read()
    assert (stored.device_id, stored.token) == (got.device_id, got.token)
    assert got.credentials_type is CredentialsType.ACCESS_TOKEN and got.token
    assert ok(tenant.get(f"{API}/devices/{got.device_id}"))["serial_number"] == name
    with DeviceClient(flash) as device:
        device.connect()
        device.publish_telemetry({"booted": True})
        assert device.whoami()["id"] == got.device_id


def test_mqtt_basic_provisioning_stores_an_mqtt_password(
    tenant: Tenant, client: httpx.Client, broker: tuple[str, int], tmp_path: Path
) -> None:
    settings = provisioning_of(tenant)
    flash = flash_for(tmp_path, client, broker)
    got = provision(
        flash,
        provision_key=settings["provision_key"],
        provision_secret=settings["provision_secret"],
        credentials_type=CredentialsType.MQTT_BASIC,
    )
    stored = Flash(flash.path).read()
    assert stored.mqtt_password == got.mqtt_password and stored.token is None
    with DeviceClient(flash) as device:
        device.connect()
        assert device.connected


def test_a_wrong_provision_secret_fails_and_leaves_the_flash_alone(
    tenant: Tenant, client: httpx.Client, broker: tuple[str, int], tmp_path: Path
) -> None:
    settings = provisioning_of(tenant)
    flash = flash_for(tmp_path, client, broker)
    before = flash.read()
    with pytest.raises(ProvisioningFailed) as failed:
        provision(flash, provision_key=settings["provision_key"], provision_secret="lsp_wrong")
    assert failed.value.status == "FAILURE" and failed.value.message
    assert Flash(flash.path).read() == before
