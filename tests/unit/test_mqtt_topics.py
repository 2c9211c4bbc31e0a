"""Who may use which MQTT topic (lineside.domain.mqtt): a device only below its own prefix,
with no wildcard that could reach another device; the provisioner only its two topics."""

from __future__ import annotations

import pytest

from lineside.domain.mqtt import (
    PROVISION_REQUEST_TOPIC,
    PROVISION_RESPONSE_TOPIC,
    TopicAccess,
    device_may,
    device_topic,
    firmware_notice_topic,
    provisioner_may,
)
from lineside.services.mqtt_access import PROVISIONER, MqttCredential, MqttIdentity, may_access

ID = "0190f1a2-7c3e-7d4b-9a8e-1f2e3d4c5b6a"
OTHER = "0190f1a2-7c3e-7d4b-9a8e-000000000000"
PUBLISH, SUBSCRIBE = TopicAccess.PUBLISH, TopicAccess.SUBSCRIBE


def test_topic_names_are_built_below_the_device() -> None:
    assert device_topic(ID, "commands", "reboot") == f"devices/{ID}/commands/reboot"
    assert firmware_notice_topic(ID) == f"devices/{ID}/firmware"


@pytest.mark.parametrize(
    "topic",
    [
        f"devices/{ID}/telemetry",
        f"devices/{ID}/state",
        f"devices/{ID}/commands/reboot",
        f"devices/{ID}/a/b/c",
    ],
)
def test_a_device_publishes_and_subscribes_below_its_own_prefix(topic: str) -> None:
    assert device_may(ID, topic, PUBLISH)
    assert device_may(ID, topic, SUBSCRIBE)


@pytest.mark.parametrize(
    "topic_filter", [f"devices/{ID}/#", f"devices/{ID}/+", f"devices/{ID}/commands/+", f"devices/{ID}/+/x"]
)
def test_a_device_subscribes_with_wildcards_below_its_prefix_but_never_publishes_them(
    topic_filter: str,
) -> None:
    assert device_may(ID, topic_filter, SUBSCRIBE)
    assert not device_may(ID, topic_filter, PUBLISH)


@pytest.mark.parametrize(
    "topic",
    [
        "#",
        "+",
        "devices/#",
        "devices/+/commands",
        "devices/+/#",
        f"devices/{OTHER}/commands",
        f"devices/{ID}",  # the prefix itself is no topic of the device's
        f"devices/{ID}/",
        f"devices/{ID}//x",
        f"devices/{ID}/#/x",  # '#' only last
        f"devices/{ID}/a#",
        f"devices/{ID}/a+",
        f"devices/{ID}x/telemetry",
        f"devices/{ID}+/telemetry",
        f"/devices/{ID}/telemetry",
        f"Devices/{ID}/telemetry",
        f"$SYS/devices/{ID}/x",
        "elsewhere",
        "",
        PROVISION_REQUEST_TOPIC,
        PROVISION_RESPONSE_TOPIC,
    ],
)
def test_a_device_may_not_reach_beyond_its_prefix(topic: str) -> None:
    assert not device_may(ID, topic, PUBLISH)
    assert not device_may(ID, topic, SUBSCRIBE)


def test_dot_dot_levels_are_just_names_and_stay_inside_the_prefix() -> None:
    # MQTT has no path traversal: "devices/ID/../OTHER/x" is a topic of ID's, never OTHER's.
    assert device_may(ID, f"devices/{ID}/../{OTHER}/commands", PUBLISH)
    assert not device_may(OTHER, f"devices/{ID}/../{OTHER}/commands", SUBSCRIBE)
    assert not device_may(ID, f"devices/../devices/{ID}/x", PUBLISH)


def test_the_provisioner_publishes_requests_and_hears_answers_only() -> None:
    assert provisioner_may(PROVISION_REQUEST_TOPIC, PUBLISH)
    assert provisioner_may(PROVISION_RESPONSE_TOPIC, SUBSCRIBE)
    assert not provisioner_may(PROVISION_RESPONSE_TOPIC, PUBLISH)
    assert not provisioner_may(PROVISION_REQUEST_TOPIC, SUBSCRIBE)
    for topic in ("#", "/provision/#", "/provision/+", f"devices/{ID}/telemetry"):
        assert not provisioner_may(topic, PUBLISH)
        assert not provisioner_may(topic, SUBSCRIBE)


def test_may_access_applies_the_rules_of_the_identity() -> None:
    device = MqttIdentity(MqttCredential.TOKEN, ID, "org", "proof")
    nobody = MqttIdentity(MqttCredential.TOKEN, proof="proof")  # credential matched no device

    assert may_access(device, f"devices/{ID}/telemetry", PUBLISH)
    assert not may_access(device, PROVISION_REQUEST_TOPIC, PUBLISH)
    assert may_access(PROVISIONER, PROVISION_REQUEST_TOPIC, PUBLISH)
    assert not may_access(PROVISIONER, f"devices/{ID}/telemetry", PUBLISH)
    assert not may_access(nobody, f"devices/{ID}/telemetry", PUBLISH)
