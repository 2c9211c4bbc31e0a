"""ThingsBoard's own device SDK (``tb-mqtt-client`` from PyPI) provisions devices against the
embedded broker, and through Mosquitto (``LINESIDE_MQTT_BROKER=mosquitto``) provisions and then
connects with the same SDK, whose ``TBDeviceMqttClient`` speaks MQTT 5 only. It runs in a
virtualenv of its own (it ships its own paho), as a subprocess, exactly as a device's firmware
would call it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lineside.bootstrap import Application
from lineside.domain.mqtt import PROVISION_REQUEST_TOPIC, PROVISION_RESPONSE_TOPIC, PROVISION_USERNAME
from lineside.services.mqtt_access import authenticate_connection
from lineside.settings import Settings
from tests.support.api import Tenant, ok, unique
from tests.support.mosquitto import MosquittoServer, serving_with_mosquitto
from tests.support.mqtt import embedded_broker, mqtt_client, wait_for
from tests.support.provisioning import API, provisioned_product

TB_MQTT_CLIENT = "tb-mqtt-client==1.13.14"
INSTALL_TIMEOUT_SECONDS = 300
# The SDK polls for its answer once a second and gives up after 60 s.
PROVISION_TIMEOUT_SECONDS = 90

# Run inside the SDK's virtualenv. ``provision()`` returns the answer on SUCCESS and None
# otherwise, logging the failure: the answers it received are taken from its log.
DEVICE_SCRIPT = """
import json, logging, sys
from tb_device_mqtt import TBDeviceMqttClient

PREFIX = "[Provisioning client] Received data from ThingsBoard: "

class Answers(logging.Handler):
    def __init__(self):
        super().__init__()
        self.payloads = []

    def emit(self, record):
        message = record.getMessage()
        if message.startswith(PREFIX):
            self.payloads.append(json.loads(message[len(PREFIX):]))

answers = Answers()
logger = logging.getLogger("tb_connection")
logger.addHandler(answers)
logger.setLevel(logging.INFO)
credentials = TBDeviceMqttClient.provision(**json.loads(sys.argv[1]))
print(json.dumps({"credentials": credentials, "answers": answers.payloads}))
"""

# Run inside the SDK's virtualenv: connect as the provisioned device, report whether the SDK
# says it is connected (within the deadline), and leave.
CONNECT_SCRIPT = """
import json, logging, sys, time
from tb_device_mqtt import TBDeviceMqttClient

logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)  # what the SDK did, if it hangs

a = json.loads(sys.argv[1])
client = TBDeviceMqttClient(a["host"], port=a["port"], username=a["username"], password=a["password"],
                            client_id=a["client_id"])
client.connect(timeout=30)
deadline = time.monotonic() + 30
while not client.is_connected() and time.monotonic() < deadline:
    time.sleep(0.05)
print(json.dumps({"connected": client.is_connected()}), flush=True)
# stop() first: the SDK's on_connect, still subscribing on paho's thread, waits for ever for
# is_connected() once disconnect() clears it, and disconnect() then joins that thread.
client.stop()
client.disconnect()
"""


@pytest.fixture(scope="session")
def tb_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv with tb-mqtt-client, built once per test session (needs PyPI: fails, not
    skips, without it)."""
    venv = tmp_path_factory.mktemp("tb-mqtt-client") / "venv"
    steps = [
        [sys.executable, "-m", "venv", str(venv)],
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            TB_MQTT_CLIENT,
        ],
    ]
    for step in steps:
        done = subprocess.run(
            step, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_SECONDS, check=False
        )
        if done.returncode != 0:
            pytest.fail(f"could not build the tb-mqtt-client virtualenv ({' '.join(step)}):\n{done.stderr}")
    return venv / "bin" / "python"


@pytest.fixture(scope="module")
def broker(application: Application) -> Iterator[tuple[str, int]]:
    with embedded_broker(application) as address:
        yield address


def tb_provision(tb_python: Path, broker: tuple[str, int], **arguments: Any) -> dict[str, Any]:
    """What ``TBDeviceMqttClient.provision(...)`` returned and every answer the SDK heard."""
    host, port = broker
    done = subprocess.run(
        # -I: the SDK's own site-packages only (no PYTHONPATH pointing at another paho).
        [str(tb_python), "-I", "-c", DEVICE_SCRIPT, json.dumps({"host": host, "port": port, **arguments})],
        capture_output=True,
        text=True,
        timeout=PROVISION_TIMEOUT_SECONDS,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(result["answers"]) == 1, result
    return result


def keys(settings: dict[str, Any]) -> dict[str, str]:
    return {
        "provision_device_key": settings["provision_key"],
        "provision_device_secret": settings["provision_secret"],
    }


def test_the_sdk_provisions_a_device_whose_token_then_connects(
    application: Application, tenant: Tenant, tb_python: Path, broker: tuple[str, int]
) -> None:
    settings = provisioned_product(tenant)
    name = unique("SN")

    result = tb_provision(tb_python, broker, device_name=name, **keys(settings))

    credentials = result["credentials"]
    assert credentials["status"] == "SUCCESS"
    assert credentials["credentialsType"] == "ACCESS_TOKEN"
    device_id, token = credentials["deviceId"], credentials["credentialsValue"]
    assert ok(tenant.get(f"{API}/devices/{device_id}"))["serial_number"] == name
    identity = authenticate_connection(
        application.services, client_id=device_id, username=device_id, password=token
    )
    assert identity.device_id == device_id
    with mqtt_client(*broker, device_id, password=token) as device:
        assert device.connack_rc == 0


def test_the_sdk_gets_mqtt_basic_credentials_that_connect(
    tenant: Tenant, tb_python: Path, broker: tuple[str, int]
) -> None:
    settings = provisioned_product(tenant)

    # The SDK asks for MQTT_BASIC only when given some of the values; Lineside chooses them all.
    result = tb_provision(tb_python, broker, device_name=unique("SN"), password="chosen", **keys(settings))

    credentials = result["credentials"]
    assert credentials["credentialsType"] == "MQTT_BASIC"
    value = credentials["credentialsValue"]
    assert value["clientId"] == value["userName"] == credentials["deviceId"]
    with mqtt_client(
        *broker, value["clientId"], username=value["userName"], password=value["password"]
    ) as device:
        assert device.connack_rc == 0


def test_a_wrong_secret_gets_a_failure(tenant: Tenant, tb_python: Path, broker: tuple[str, int]) -> None:
    settings = provisioned_product(tenant)

    result = tb_provision(
        tb_python,
        broker,
        device_name=unique("SN"),
        **{**keys(settings), "provision_device_secret": "lsp_wrong"},
    )

    assert result["credentials"] is None
    assert result["answers"][0]["status"] == "FAILURE"
    assert "wrong provision secret" in result["answers"][0]["errorMsg"]


def test_a_predefined_device_provisions_once(
    tenant: Tenant, tb_python: Path, broker: tuple[str, int]
) -> None:
    settings = provisioned_product(tenant, "predefined")
    device = tenant.device(settings["product_id"])

    first = tb_provision(tb_python, broker, device_name=device["serial_number"], **keys(settings))
    second = tb_provision(tb_python, broker, device_name=device["serial_number"], **keys(settings))

    assert first["credentials"]["deviceId"] == device["id"]
    assert second["credentials"] is None
    assert "already provisioned" in second["answers"][0]["errorMsg"]


def test_the_sdk_x509_request_is_told_to_send_a_csr(
    tenant: Tenant, tb_python: Path, broker: tuple[str, int]
) -> None:
    settings = provisioned_product(tenant)

    result = tb_provision(
        tb_python, broker, device_name=unique("SN"), hash="-----BEGIN CERTIFICATE-----", **keys(settings)
    )

    assert result["credentials"] is None
    assert "CSR" in result["answers"][0]["errorMsg"]


def test_an_answer_reaches_only_the_connection_that_asked(
    tenant: Tenant, tb_python: Path, broker: tuple[str, int]
) -> None:
    settings = provisioned_product(tenant)
    with mqtt_client(*broker, unique("eavesdropper"), username=PROVISION_USERNAME) as eavesdropper:
        assert eavesdropper.connack_rc == 0
        assert eavesdropper.subscribe(PROVISION_RESPONSE_TOPIC) == 1

        result = tb_provision(tb_python, broker, device_name=unique("SN"), **keys(settings))
        # Its own request comes after the SDK's answer was sent: a leaked answer would be first.
        eavesdropper.publish(PROVISION_REQUEST_TOPIC, b"not json")
        first = eavesdropper.wait_for_message()

    assert result["credentials"]["status"] == "SUCCESS"
    assert json.loads(first.payload) == {"status": "FAILURE", "errorMsg": "The request is not JSON."}


# -- through Mosquitto: the SDK's MQTT 5 device client connects -------------------------------


@pytest.fixture(scope="module")
def mosquitto(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoServer]:
    with serving_with_mosquitto(settings, tmp_path_factory.mktemp("tb-mosquitto")) as server:
        yield server


def tb_connects(
    server: MosquittoServer, tb_python: Path, client_id: str, username: str, password: str
) -> bool:
    arguments = {"host": "127.0.0.1", "port": server.mqtt_port, "client_id": client_id, "username": username}
    try:
        done = subprocess.run(
            [str(tb_python), "-I", "-c", CONNECT_SCRIPT, json.dumps({**arguments, "password": password})],
            capture_output=True,
            text=True,
            timeout=PROVISION_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired as hung:
        said = [(stream or b"").decode(errors="replace")[-3000:] for stream in (hung.stdout, hung.stderr)]
        serve_log = server.log.read_text(errors="replace")[-3000:]
        pytest.fail(f"the SDK hung: stdout {said[0]!r}\nstderr {said[1]}\nserve.log: {serve_log}")
    assert done.returncode == 0, done.stderr
    connected: bool = json.loads(done.stdout.strip().splitlines()[-1])["connected"]
    return connected


@pytest.mark.parametrize("credentials_type", ["ACCESS_TOKEN", "MQTT_BASIC"])
def test_the_sdk_provisions_and_then_connects_with_mqtt_5_through_mosquitto(
    application: Application,
    tenant: Tenant,
    tb_python: Path,
    mosquitto: MosquittoServer,
    credentials_type: str,
) -> None:
    settings = provisioned_product(tenant)
    # The SDK asks for MQTT_BASIC when given some of its values; Lineside chooses them all.
    chosen = {"password": "chosen"} if credentials_type == "MQTT_BASIC" else {}
    address = ("127.0.0.1", mosquitto.mqtt_port)

    result = tb_provision(tb_python, address, device_name=unique("SN"), **chosen, **keys(settings))

    credentials = result["credentials"]
    assert credentials["credentialsType"] == credentials_type
    device_id, value = credentials["deviceId"], credentials["credentialsValue"]
    password = value["password"] if credentials_type == "MQTT_BASIC" else value
    assert tb_connects(mosquitto, tb_python, device_id, device_id, password)
    assert not tb_connects(mosquitto, tb_python, device_id, device_id, "lsd_" + "z" * 43)
    wait_for(lambda: ok(tenant.get(f"{API}/devices/{device_id}"))["state"] == "activated", what="activation")
