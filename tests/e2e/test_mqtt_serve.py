"""``lineside serve`` runs the embedded MQTT broker: real clients (paho, and the
``mosquitto_pub`` command) connect to the served process over TCP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from lineside.domain.mqtt import device_topic
from lineside.settings import Settings
from tests.conftest import SHARED_DEPLOYMENT_ENVIRONMENT
from tests.support.api import Tenant
from tests.support.mqtt import NOT_AUTHORIZED, mqtt_client, wait_for
from tests.support.server import free_port

HOST = "127.0.0.1"
MOSQUITTO_PUB = Path("/usr/bin/mosquitto_pub")


def device_with_token(tenant: Tenant) -> tuple[str, str]:
    device_id = tenant.device(tenant.product()["id"])["id"]
    return device_id, tenant.token(device_id)


def is_online(tenant: Tenant, device_id: str) -> bool:
    response = tenant.get(f"/api/v1/devices/{device_id}")
    assert response.status_code == 200, response.text
    return bool(response.json()["online"])


def test_a_device_connects_publishes_and_shows_online(
    server_url: str, mqtt_port: int, tenant: Tenant
) -> None:
    device_id, token = device_with_token(tenant)
    commands = device_topic(device_id, "commands")

    with mqtt_client(HOST, mqtt_port, device_id, password=token) as device:
        assert device.connack_rc == 0
        assert device.subscribe(commands) == 1
        device.publish(commands, b'{"blink": 3}')
        assert device.wait_for_message().payload == b'{"blink": 3}'
        wait_for(lambda: is_online(tenant, device_id), what="the device to show online")
    wait_for(lambda: not is_online(tenant, device_id), what="the device to show offline")
    with mqtt_client(HOST, mqtt_port, device_id, password="lsd_wrong") as refused:
        assert refused.connack_rc == NOT_AUTHORIZED


def mosquitto_pub(
    port: int, device_id: str, password: str, version: str = "mqttv311"
) -> subprocess.CompletedProcess[str]:
    command = [
        str(MOSQUITTO_PUB),
        *("-V", version, "-h", HOST, "-p", str(port), "-q", "1"),
        *("-i", device_id, "-u", device_id, "-P", password),
        *("-t", device_topic(device_id, "telemetry"), "-m", '{"temperature": 21.5}'),
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)


def test_mosquitto_pub_publishes_with_a_device_token(server_url: str, mqtt_port: int, tenant: Tenant) -> None:
    assert MOSQUITTO_PUB.exists(), "mosquitto-clients is part of the test environment"
    device_id, token = device_with_token(tenant)

    published = mosquitto_pub(mqtt_port, device_id, token)
    refused = mosquitto_pub(mqtt_port, device_id, "lsd_wrong")

    assert published.returncode == 0, published.stderr
    assert refused.returncode != 0
    assert "not authori" in (refused.stderr + refused.stdout).lower()


def test_an_mqtt_5_client_is_told_the_broker_speaks_3_1_1(
    server_url: str, mqtt_port: int, tenant: Tenant
) -> None:
    device_id, token = device_with_token(tenant)

    mqtt_5 = mosquitto_pub(mqtt_port, device_id, token, version="5")

    assert mqtt_5.returncode != 0
    assert "unsupported protocol version" in (mqtt_5.stderr + mqtt_5.stdout).lower()


def test_an_mqtt_3_1_client_is_told_its_protocol_version_is_unacceptable(
    server_url: str, mqtt_port: int, tenant: Tenant
) -> None:
    device_id, token = device_with_token(tenant)

    mqtt_31 = mosquitto_pub(mqtt_port, device_id, token, version="mqttv31")

    assert mqtt_31.returncode != 0
    assert "unacceptable protocol version" in (mqtt_31.stderr + mqtt_31.stdout).lower()


def serve(settings: Settings, http_port: int, **environment: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "LINESIDE_DATABASE_URL": settings.database_url,
        "LINESIDE_DATA_DIR": str(settings.data_dir),
        **SHARED_DEPLOYMENT_ENVIRONMENT,
        "LINESIDE_PORT": str(http_port),
        "LINESIDE_LOG_LEVEL": "warning",
        **environment,
    }
    command = [sys.executable, "-m", "lineside", "serve", "--no-migrate"]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_taken_mqtt_port_is_a_one_line_error(server_url: str, mqtt_port: int, settings: Settings) -> None:
    second = serve(settings, free_port(), LINESIDE_MQTT_PORT=str(mqtt_port))
    out, err = second.communicate(timeout=60)

    assert second.returncode != 0
    assert "Lineside on" not in out  # nothing claims a server started
    assert len(err.strip().splitlines()) == 1, err
    assert "LINESIDE_MQTT_PORT" in err
    assert str(mqtt_port) in err


def healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200
    except httpx.TransportError:
        return False


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex((HOST, port)) == 0


def test_mqtt_can_be_turned_off(settings: Settings) -> None:
    http_port, unused_mqtt_port = free_port(), free_port()
    server = serve(settings, http_port, LINESIDE_MQTT_ENABLED="0", LINESIDE_MQTT_PORT=str(unused_mqtt_port))
    try:
        wait_for(lambda: healthy(f"http://{HOST}:{http_port}") or server.poll() is not None, 30, "serve")
        assert server.poll() is None
        assert not listening(unused_mqtt_port)
    finally:
        server.terminate()
        out, _err = server.communicate(timeout=30)
    assert "Lineside on http://" in out
    assert "MQTT on" not in out
