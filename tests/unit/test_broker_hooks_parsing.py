"""The pure parts of the broker hooks: reading what brokers send, RabbitMQ's topic mapping,
and keeping passwords and the hook secret out of access logs."""

from __future__ import annotations

import pytest

from lineside.entrypoints.api.routes.broker_hooks.common import _body_fields, connected_as, text
from lineside.entrypoints.api.routes.broker_hooks.rabbitmq import mqtt_topic
from lineside.entrypoints.logs import redact
from lineside.services.mqtt_access import PROVISIONER


@pytest.mark.parametrize(
    ("body", "content_type", "fields"),
    [
        (b'{"username": "a"}', "application/json", {"username": "a"}),
        (
            b"username=a&password=b%26c",
            "application/x-www-form-urlencoded",
            {"username": "a", "password": "b&c"},
        ),
        (b'{"username": "a"}', "", {"username": "a"}),
        (b"username=a", "", {"username": "a"}),
        (b"[1, 2]", "application/json", {}),
        (b"username=a", "application/json", {}),
        (b"no equals sign", "application/x-www-form-urlencoded", {}),
        (b"\xff\xfe", "", {}),
    ],
)
def test_bodies_are_read_as_json_or_form_and_anything_else_is_no_fields(
    body: bytes, content_type: str, fields: dict[str, str]
) -> None:
    assert _body_fields(body, content_type) == fields


def test_only_strings_and_numbers_count_as_text() -> None:
    params = {"s": "x", "n": 4, "f": 1.5, "b": True, "l": ["x"], "d": {}, "none": None}

    assert [text(params, name) for name in params] == ["x", "4", "1.5", None, None, None, None]
    assert text(params, "missing") is None


def test_a_connection_is_a_device_only_when_its_client_id_is_its_username() -> None:
    device = connected_as("d-1", "d-1")
    assert device is not None and device.device_id == "d-1"
    assert connected_as(None, "d-1") == device
    assert connected_as("d-2", "d-1") is None
    assert connected_as("d-1", None) is None
    assert connected_as("d-1", "") is None
    assert connected_as("anything", "provision") is PROVISIONER


@pytest.mark.parametrize(
    ("routing_key", "topic"),
    [
        ("devices.d-1.telemetry", "devices/d-1/telemetry"),
        ("devices.d-1.*.reboot", "devices/d-1/+/reboot"),
        ("devices.d-1.#", "devices/d-1/#"),
        (".provision.request", "/provision/request"),
    ],
)
def test_rabbitmq_routing_keys_map_back_to_mqtt_topics(routing_key: str, topic: str) -> None:
    assert mqtt_topic(routing_key) == topic


def test_passwords_and_the_hook_secret_in_query_strings_stay_out_of_logs() -> None:
    line = redact("GET /broker/rabbitmq/user?username=d-1&password=hunter2&vhost=%2F HTTP/1.1")
    hook = redact("POST /broker/vernemq/on_register?secret=s3cr3t-value HTTP/1.1")

    assert "hunter2" not in line and "username=d-1" in line
    assert "s3cr3t-value" not in hook
