"""``lineside serve`` with Mosquitto 2 as its broker (``LINESIDE_MQTT_BROKER=mosquitto``):
real MQTT 5 and 3.1.1 clients (paho, ``mosquitto_pub``) connect to a real Mosquitto whose
plugin asks the real Lineside over HTTP. The same promises as the embedded broker: activation
on the first connection, authentication before takeover, topic limits, revocation within the
recheck interval, presence, firmware notices and provisioning answers for one connection."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import paho.mqtt.client as paho
import pytest

from lineside.adapters.mqtt.mosquitto import MosquittoConfig, MosquittoProcess, plugin_path
from lineside.bootstrap import Application, mosquitto_own_check
from lineside.domain.mqtt import (
    PROVISION_REQUEST_TOPIC,
    PROVISION_RESPONSE_TOPIC,
    PROVISION_USERNAME,
    TopicAccess,
    device_may,
    device_topic,
    firmware_notice_topic,
)
from lineside.settings import Settings
from tests.support import firmware
from tests.support.api import Tenant, new_tenant, ok
from tests.support.mosquitto import RECHECK_SECONDS, MosquittoServer, serving_with_mosquitto
from tests.support.mqtt import NOT_AUTHORIZED, REFUSED, connect, mqtt_client, wait_for
from tests.support.provisioning import provisioned_product
from tests.support.server import free_port

HOST = "127.0.0.1"
VERSIONS = {"mqtt5": paho.MQTTv5, "mqtt311": paho.MQTTv311}
NOT_AUTHORIZED_V5 = 0x87  # an MQTT 5 CONNACK reason code
# Several rechecks, so a slow round on a loaded machine still counts.
CUT_OFF_DEADLINE = 20 * RECHECK_SECONDS + 5


@dataclass
class Site:
    server: MosquittoServer
    http: httpx.Client
    application: Application

    def tenant(self) -> Tenant:
        return new_tenant(self.application, self.http)

    def device(self, tenant: Tenant) -> tuple[str, str]:
        device_id = tenant.device(tenant.product()["id"])["id"]
        return device_id, tenant.token(device_id)

    def shown(self, tenant: Tenant, device_id: str) -> dict[str, object]:
        response = tenant.get(f"/api/v1/devices/{device_id}")
        assert response.status_code == 200, response.text
        shown: dict[str, object] = response.json()
        return shown


@pytest.fixture(scope="module")
def site(
    settings: Settings, application: Application, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    with (
        serving_with_mosquitto(settings, tmp_path_factory.mktemp("mosquitto")) as server,
        httpx.Client(base_url=server.http_url, timeout=30.0) as http,
    ):
        yield Site(server, http, application)


@pytest.mark.parametrize("version", VERSIONS)
def test_a_device_connects_is_activated_and_hears_its_own_topics(site: Site, version: str) -> None:
    tenant = site.tenant()
    device_id, token = site.device(tenant)
    state = device_topic(device_id, "state")

    with mqtt_client(
        HOST, site.server.mqtt_port, device_id, password=token, protocol=VERSIONS[version]
    ) as device:
        assert device.connack_rc == 0
        assert device.subscribe(device_topic(device_id, "#")) == 1
        device.publish(state, b'{"on": true}')
        assert device.wait_for_message(lambda m: m.topic == state).payload == b'{"on": true}'
        wait_for(lambda: site.shown(tenant, device_id)["online"] is True, what="the device online")
    assert site.shown(tenant, device_id)["state"] == "activated"
    wait_for(lambda: site.shown(tenant, device_id)["online"] is False, what="the device offline")


def requests_answered(site: Site, route: str) -> float:
    """How many requests to ``route`` Lineside answered 200, from its /metrics."""
    prefix = f'lineside_http_requests_total{{method="POST",route="{route}",status="200"}} '
    lines = site.http.get("/metrics").text.splitlines()
    return sum(float(line.removeprefix(prefix)) for line in lines if line.startswith(prefix))


@pytest.mark.parametrize("secret", ["token", "mqtt_password"])
def test_the_plugin_accepts_a_devices_own_password_without_asking_lineside(site: Site, secret: str) -> None:
    """Mosquitto's only thread never waits for Lineside for a device's own password: the
    plugin checks it against the database and reports the arrival, which activates it."""
    tenant = site.tenant()
    device_id = tenant.device(tenant.product()["id"])["id"]
    password = tenant.created(f"/api/v1/devices/{device_id}/credentials", {"type": secret})["secret"]
    # The plugin checks passwords itself only once Lineside has answered one of its ticks.
    wait_for(lambda: requests_answered(site, "/broker/mosquitto/tick") >= 2, what="two ticks")
    asked, reported = (requests_answered(site, f"/broker/mosquitto/{path}") for path in ("user", "arrivals"))

    with mqtt_client(
        HOST, site.server.mqtt_port, device_id, password=password, protocol=paho.MQTTv5
    ) as device:
        assert device.connack_rc == 0
        wait_for(lambda: site.shown(tenant, device_id)["state"] == "activated", what="the device activated")
        assert device.subscribe(device_topic(device_id, "#")) == 1
        assert device.subscribe(device_topic(str(uuid.uuid4()), "#")) == NOT_AUTHORIZED_V5
    assert requests_answered(site, "/broker/mosquitto/user") == asked
    assert requests_answered(site, "/broker/mosquitto/arrivals") > reported


@pytest.mark.parametrize("version", VERSIONS)
def test_wrong_credentials_and_another_devices_id_are_refused(site: Site, version: str) -> None:
    tenant = site.tenant()
    device_id, token = site.device(tenant)
    other_id, _ = site.device(site.tenant())
    protocol = VERSIONS[version]

    with mqtt_client(
        HOST, site.server.mqtt_port, device_id, password="lsd_" + "x" * 43, protocol=protocol
    ) as bad:
        assert bad.connack_rc == NOT_AUTHORIZED
    with mqtt_client(
        HOST, site.server.mqtt_port, other_id, username=device_id, password=token, protocol=protocol
    ) as foreign:
        assert foreign.connack_rc == NOT_AUTHORIZED
    assert site.shown(tenant, device_id)["state"] == "defined"  # nothing activated it


@pytest.mark.parametrize("version", VERSIONS)
def test_a_device_may_not_reach_another_devices_topics(site: Site, version: str) -> None:
    victim_id, victim_token = site.device(site.tenant())
    intruder_id, intruder_token = site.device(site.tenant())
    protocol = VERSIONS[version]
    port = site.server.mqtt_port

    with (
        mqtt_client(HOST, port, victim_id, password=victim_token, protocol=protocol) as victim,
        mqtt_client(HOST, port, intruder_id, password=intruder_token, protocol=protocol) as intruder,
    ):
        assert victim.subscribe(device_topic(victim_id, "commands")) == 1
        assert intruder.subscribe(device_topic(victim_id, "#")) >= REFUSED
        assert intruder.subscribe("#") >= REFUSED
        intruder.publish(device_topic(victim_id, "commands"), b"forged")
        victim.publish(device_topic(victim_id, "commands"), b"own")
        victim.wait_for_message(lambda m: m.payload == b"own")
        assert [m.payload for m in victim.received(device_topic(victim_id, "commands"))] == [b"own"]


# Topics and filters on both sides of every clause of the device rule, which the plugin answers
# itself for a device's connection (device_topic_allowed in the C file).
RULE_CASES = [
    "{own}/state",
    "{own}/a/b/c",
    "{own}/#",
    "{own}/+",
    "{own}/+/x",
    "{own}/a/#",
    "{own}",
    "{own}/",
    "{own}//x",
    "{own}/a/",
    "{own}/#/x",
    "{own}/a#",
    "{own}/a+",
    "{own}/+a/x",
    "{own}x/state",
    "{own}/../x",
    "devices/{other}/state",
    "devices/+/state",
    "devices/#",
    "#",
    "+/{id}/state",
    "Devices/{id}/state",
    "/devices/{id}/state",
]


def well_formed_filter(topic: str) -> bool:
    """MQTT's own syntax: '+' a whole level, '#' the whole last level."""
    levels = topic.split("/")
    return all(
        ("+" not in level or level == "+") and ("#" not in level or (level == "#" and i == len(levels) - 1))
        for i, level in enumerate(levels)
    )


def test_the_plugins_device_rule_is_the_domains(site: Site) -> None:
    device_id, token = site.device(site.tenant())
    other_id, _ = site.device(site.tenant())
    topics = [case.format(own=f"devices/{device_id}", id=device_id, other=other_id) for case in RULE_CASES]

    # MQTT itself refuses a malformed filter before any rule is asked (paho does not send it).
    filters = [topic for topic in topics if well_formed_filter(topic)]
    with mqtt_client(HOST, site.server.mqtt_port, device_id, password=token, protocol=paho.MQTTv5) as device:
        subscribed = {topic: device.subscribe(topic) < REFUSED for topic in filters}
        concrete = [topic for topic in topics if "+" not in topic and "#" not in topic]
        published = {topic: device.publish(topic, b"x") == 0 for topic in concrete}
        assert device.connected

    assert subscribed == {t: device_may(device_id, t, TopicAccess.SUBSCRIBE) for t in filters}
    assert published == {t: device_may(device_id, t, TopicAccess.PUBLISH) for t in concrete}
    assert any(subscribed.values()) and not all(subscribed.values())


def test_a_wrong_password_never_takes_over_a_live_connection(site: Site) -> None:
    device_id, token = site.device(site.tenant())
    port = site.server.mqtt_port
    commands = device_topic(device_id, "commands")

    with mqtt_client(HOST, port, device_id, password=token, protocol=paho.MQTTv5) as live:
        assert live.subscribe(commands) == 1
        with mqtt_client(HOST, port, device_id, password="lsd_" + "y" * 43, protocol=paho.MQTTv5) as impostor:
            assert impostor.connack_rc == NOT_AUTHORIZED
        live.publish(commands, b"still here")
        assert live.wait_for_message(lambda m: m.payload == b"still here").topic == commands
        assert live.connected


def test_the_provision_user_can_neither_take_a_devices_id_nor_keep_a_session(site: Site) -> None:
    device_id, token = site.device(site.tenant())
    port = site.server.mqtt_port
    commands = device_topic(device_id, "commands")

    with mqtt_client(HOST, port, device_id, password=token, clean_session=False) as live:
        assert live.subscribe(commands) == 1
        with mqtt_client(HOST, port, device_id, username=PROVISION_USERNAME) as impostor:
            assert impostor.connack_rc == NOT_AUTHORIZED
        provisioner = "provisioner-1"
        with mqtt_client(HOST, port, provisioner, username=PROVISION_USERNAME, clean_session=False) as kept:
            assert kept.connack_rc == NOT_AUTHORIZED
        live.publish(commands, b"still mine")
        assert live.wait_for_message(lambda m: m.payload == b"still mine").topic == commands
        assert live.connected


def test_a_takeover_with_the_right_token_keeps_the_device_online(site: Site) -> None:
    tenant = site.tenant()
    device_id, token = site.device(tenant)
    port = site.server.mqtt_port

    with (
        mqtt_client(HOST, port, device_id, password=token, protocol=paho.MQTTv5) as first,
        mqtt_client(HOST, port, device_id, password=token, protocol=paho.MQTTv311) as second,
    ):
        first.wait_disconnected()
        assert second.connected
        # The old connection's end is no departure: ticks after it leave the device online.
        a_tick_went_by(site)
        a_tick_went_by(site)
        assert site.shown(tenant, device_id)["online"] is True


@pytest.mark.parametrize("ending", ["revoke", "new token"])
def test_a_revoked_device_is_cut_off_within_the_recheck(site: Site, ending: str) -> None:
    tenant = site.tenant()
    device_id, token = site.device(tenant)
    port = site.server.mqtt_port

    with mqtt_client(HOST, port, device_id, password=token, protocol=paho.MQTTv5) as device:
        assert device.connack_rc == 0
        if ending == "revoke":
            assert tenant.post(f"/api/v1/devices/{device_id}/revoke").status_code == 200
        else:
            tenant.token(device_id)
        device.wait_disconnected(CUT_OFF_DEADLINE)
    with mqtt_client(HOST, port, device_id, password=token, protocol=paho.MQTTv5) as again:
        assert again.connack_rc == NOT_AUTHORIZED


def test_a_deployment_is_announced_on_each_members_firmware_topic(site: Site) -> None:
    tenant = site.tenant()
    product_id = tenant.product()["id"]
    group = firmware.group(tenant, product_id, "production")
    device_id = tenant.device(product_id)["id"]
    token = tenant.token(device_id)
    firmware.place(site.application, device_id, group["id"])
    topic = firmware_notice_topic(device_id)

    with mqtt_client(HOST, site.server.mqtt_port, device_id, password=token, protocol=paho.MQTTv5) as device:
        assert device.subscribe(topic) == 1
        a_tick_went_by(site)
        release = firmware.release(tenant, product_id)
        firmware.deployed(tenant, group["id"], release["id"])
        notice = json.loads(device.wait_for_message(lambda m: m.topic == topic, CUT_OFF_DEADLINE).payload)
    assert (notice["release_id"], notice["version"]) == (release["id"], release["version"])
    # Retained, as on the embedded broker: subscribing later still hears the latest.
    with mqtt_client(HOST, site.server.mqtt_port, device_id, password=token) as later:
        assert later.subscribe(topic) == 1
        assert json.loads(later.wait_for_message(lambda m: m.topic == topic).payload) == notice


def a_tick_went_by(site: Site) -> None:
    """Waits until the plugin has ticked at least once: a device's departure reaches Lineside
    only in a tick. (The first tick takes the firmware cursor: deployments after it are news.)"""
    tenant = site.tenant()
    device_id, token = site.device(tenant)
    with mqtt_client(HOST, site.server.mqtt_port, device_id, password=token) as device:
        assert device.connack_rc == 0
        wait_for(lambda: site.shown(tenant, device_id)["online"] is True, what="a connection recorded")
    wait_for(lambda: site.shown(tenant, device_id)["online"] is False, CUT_OFF_DEADLINE, "a tick")


def test_a_provisioning_answer_reaches_only_the_connection_that_asked(site: Site) -> None:
    settings = provisioned_product(site.tenant())
    request = {
        "provisionDeviceKey": settings["provision_key"],
        "provisionDeviceSecret": settings["provision_secret"],
        "deviceName": "SN-MOSQUITTO-1",
    }
    port = site.server.mqtt_port

    with (
        mqtt_client(HOST, port, "asker", username=PROVISION_USERNAME, protocol=paho.MQTTv5) as asker,
        mqtt_client(HOST, port, "eavesdropper", username=PROVISION_USERNAME) as eavesdropper,
    ):
        assert asker.subscribe(PROVISION_RESPONSE_TOPIC) == 1
        assert eavesdropper.subscribe(PROVISION_RESPONSE_TOPIC) == 1
        asker.publish(PROVISION_REQUEST_TOPIC, json.dumps(request))
        answer = json.loads(asker.wait_for_message(lambda m: m.topic == PROVISION_RESPONSE_TOPIC).payload)
        assert eavesdropper.received(PROVISION_RESPONSE_TOPIC) == []
    assert answer["status"] == "SUCCESS"
    device_id, token = answer["deviceId"], answer["credentialsValue"]
    with mqtt_client(HOST, port, device_id, password=token, protocol=paho.MQTTv5) as provisioned:
        assert provisioned.connack_rc == 0


@pytest.mark.parametrize("version", ["5", "mqttv311"])
def test_mosquitto_pub_publishes_with_a_device_token(site: Site, version: str) -> None:
    device_id, token = site.device(site.tenant())
    command = [
        "mosquitto_pub",
        *("-V", version, "-h", HOST, "-p", str(site.server.mqtt_port), "-q", "1"),
        *("-i", device_id, "-u", device_id, "-P", token),
        *("-t", device_topic(device_id, "telemetry"), "-m", '{"temperature": 21.5}'),
    ]

    published = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)

    assert published.returncode == 0, published.stderr


# -- MQTT.js, the Node.js client, with MQTT 5 ------------------------------------------------

MQTT_JS = "mqtt@5.16.0"
NPM_TIMEOUT_SECONDS = 300
# Connects with MQTT 5, subscribes to a topic, publishes to it, and reports what came back
# (or the error MQTT.js raised), as one JSON line.
MQTT_JS_SCRIPT = """
const mqtt = require(process.argv[1] + "/node_modules/mqtt");
const a = JSON.parse(process.argv[2]);
const report = (result) => { console.log(JSON.stringify(result)); client.end(true); };
const client = mqtt.connect({
  host: a.host, port: a.port, protocolVersion: 5, clientId: a.clientId,
  username: a.username, password: a.password, reconnectPeriod: 0, connectTimeout: 10000,
});
client.on("connect", () => {
  client.subscribe(a.topic, { qos: 1 }, (error, granted) => {
    if (error) return report({ connected: true, error: error.message });
    client.publish(a.topic, "hello from MQTT.js", { qos: 1 });
  });
});
client.on("message", (topic, payload) => report({ connected: true, topic, payload: payload.toString() }));
client.on("error", (error) => report({ connected: false, error: error.message, code: error.code }));
"""


@pytest.fixture(scope="module")
def mqtt_js(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A directory with MQTT.js installed from npm (fails, not skips, without the registry)."""
    directory = tmp_path_factory.mktemp("mqtt-js")
    command = ["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(directory), MQTT_JS]
    done = subprocess.run(command, capture_output=True, text=True, timeout=NPM_TIMEOUT_SECONDS, check=False)
    if done.returncode != 0:
        pytest.fail(f"could not install {MQTT_JS}:\n{done.stderr}")
    return str(directory)


def mqtt_js_session(mqtt_js: str, port: int, device_id: str, password: str) -> dict[str, object]:
    arguments = {
        "host": HOST,
        "port": port,
        "clientId": device_id,
        "username": device_id,
        "password": password,
        "topic": device_topic(device_id, "state"),
    }
    done = subprocess.run(
        ["node", "-e", MQTT_JS_SCRIPT, mqtt_js, json.dumps(arguments)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_mqtt_js_connects_with_mqtt_5_and_hears_its_own_topic(site: Site, mqtt_js: str) -> None:
    tenant = site.tenant()
    device_id, token = site.device(tenant)

    heard = mqtt_js_session(mqtt_js, site.server.mqtt_port, device_id, token)
    refused = mqtt_js_session(mqtt_js, site.server.mqtt_port, device_id, "lsd_" + "q" * 43)

    assert heard == {
        "connected": True,
        "topic": device_topic(device_id, "state"),
        "payload": "hello from MQTT.js",
    }
    assert refused["connected"] is False and refused["code"] == NOT_AUTHORIZED_V5
    wait_for(lambda: site.shown(tenant, device_id)["state"] == "activated", what="the activation")


def test_a_mosquitto_whose_plugin_has_a_wrong_secret_lets_no_device_in(
    site: Site, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Lineside hands the proof only to its plugin with the hook secret; a plugin with a wrong
    one (a rotated secret, another Mosquitto) must not let in devices it could never revoke,
    not even through its own password check, which has the right key and database."""
    device_id, token = site.device(site.tenant())
    home = tmp_path_factory.mktemp("wrong-secret")
    plugin = plugin_path(site.server.data_dir / "mosquitto")  # the one serve built
    port = free_port()
    config = MosquittoConfig(
        host=HOST,
        port=port,
        plugin=plugin,
        lineside_url=site.server.http_url,
        secret="not-the-hook-secret",
        recheck_seconds=RECHECK_SECONDS,
        pid_file=home / "mosquitto.pid",
        own_check=mosquitto_own_check(settings),
    ).write(home / "mosquitto.conf")
    mosquitto = MosquittoProcess("mosquitto", config)
    mosquitto.start(HOST, port)
    try:
        with mqtt_client(HOST, port, device_id, password=token, protocol=paho.MQTTv5) as device:
            assert device.connack_rc == NOT_AUTHORIZED
    finally:
        mosquitto.stop()


# -- stopping ---------------------------------------------------------------------------------


@pytest.mark.parametrize("workers", ["1", "2"])
def test_stopping_the_server_takes_its_devices_offline(
    settings: Settings, application: Application, tmp_path_factory: pytest.TempPathFactory, workers: str
) -> None:
    scratch = tmp_path_factory.mktemp("stopping")
    with (
        serving_with_mosquitto(settings, scratch, LINESIDE_WORKERS=workers) as server,
        httpx.Client(base_url=server.http_url, timeout=30.0) as http,
    ):
        tenant = new_tenant(application, http)
        device_id = tenant.device(tenant.product()["id"])["id"]
        device = connect(HOST, server.mqtt_port, device_id, password=tenant.token(device_id))
        wait_for(lambda: ok(tenant.get(f"/api/v1/devices/{device_id}"))["online"] is True, what="online")
    # The server stopped (SIGTERM, and it exited): Mosquitto went first, and its plugin told
    # Lineside, which still answered, that the connection ended with it.
    device.wait_disconnected()
    device.close()
    with application.services.unit_of_work(write=False) as uow:
        stored = uow.devices.get(device_id, within="/")
    assert stored is not None and stored.online is False
