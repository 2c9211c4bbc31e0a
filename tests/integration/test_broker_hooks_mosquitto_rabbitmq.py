"""Golden tests of mosquitto-go-auth's HTTP backend (JSON and form params; status, json and
text response modes) and of RabbitMQ's HTTP auth backend (the requests RabbitMQ 3.10's MQTT
plugin makes, captured from a real node)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from lineside.settings import Settings
from tests.support.broker_hooks import Hooks, running_hooks

MOSQUITTO = "/broker/mosquitto"
RABBITMQ = "/broker/rabbitmq"


@pytest.fixture(scope="module")
def hooks(settings: Settings) -> Iterator[Hooks]:
    with running_hooks(settings) as running:
        yield running


def go_auth(hooks: Hooks, path: str, params: dict[str, Any], mode: str) -> httpx.Response:
    """The plugin's request in ``auth_opt_http_params_mode`` ``mode`` (POST, its default)."""
    if mode == "json":
        return hooks.http.post(path, json=params)
    return hooks.http.post(path, data={name: str(value) for name, value in params.items()})


@pytest.mark.parametrize("mode", ["json", "form"])
def test_mosquitto_user_check_answers_by_status_and_json_body(hooks: Hooks, mode: str) -> None:
    device_id, token = hooks.device(hooks.tenant())

    good = go_auth(
        hooks, f"{MOSQUITTO}/user", {"username": device_id, "password": token, "clientid": device_id}, mode
    )
    bad = go_auth(
        hooks, f"{MOSQUITTO}/user", {"username": device_id, "password": "lsd_x", "clientid": device_id}, mode
    )
    foreign = go_auth(
        hooks, f"{MOSQUITTO}/user", {"username": device_id, "password": token, "clientid": "x"}, mode
    )

    assert (good.status_code, good.json()) == (200, {"ok": True, "error": ""})
    assert (bad.status_code, bad.json()["ok"]) == (403, False)
    assert foreign.content == bad.content and foreign.status_code == 403


@pytest.mark.parametrize("mode", ["json", "form"])
def test_mosquitto_has_no_superusers(hooks: Hooks, mode: str) -> None:
    device_id, _ = hooks.device(hooks.tenant())

    response = go_auth(hooks, f"{MOSQUITTO}/superuser", {"username": device_id}, mode)

    assert (response.status_code, response.json()["ok"]) == (403, False)


@pytest.mark.parametrize("mode", ["json", "form"])
def test_mosquitto_acl_checks_every_access_level(hooks: Hooks, mode: str) -> None:
    device_id, _ = hooks.device(hooks.tenant())
    own, foreign = f"devices/{device_id}/commands/reboot", "devices/other/commands/reboot"
    cases: list[tuple[str, int | str, int]] = [
        (own, 1, 200),
        (own, 2, 200),
        (own, 3, 200),
        (f"devices/{device_id}/#", 4, 200),
    ]
    cases += [
        (foreign, 1, 403),
        (foreign, 2, 403),
        (foreign, 3, 403),
        ("#", 4, 403),
        (own, 8, 403),
        (own, "x", 403),
    ]

    statuses = [
        go_auth(
            hooks,
            f"{MOSQUITTO}/acl",
            {"username": device_id, "clientid": device_id, "topic": t, "acc": acc},
            mode,
        )
        for t, acc, _ in cases
    ]

    assert [s.status_code for s in statuses] == [status for _, _, status in cases]


def test_mosquitto_get_method_and_text_response_mode(hooks: Hooks) -> None:
    device_id, token = hooks.device(hooks.tenant())
    query = {"username": device_id, "password": token, "clientid": device_id}

    assert hooks.http.get(f"{MOSQUITTO}/user", params=query).status_code == 200
    text_ok = hooks.http.post(f"{MOSQUITTO}/text/user", json=query)
    text_refused = hooks.http.post(f"{MOSQUITTO}/text/superuser", json={"username": device_id})
    acl = {"username": device_id, "clientid": device_id, "topic": f"devices/{device_id}/state", "acc": 2}

    assert (text_ok.status_code, text_ok.text) == (200, "ok")
    assert text_refused.status_code == 403 and text_refused.text != "ok"
    assert hooks.http.put(f"{MOSQUITTO}/text/acl", json=acl).text == "ok"


def test_mosquitto_authentication_counts_as_a_connection(hooks: Hooks) -> None:
    device_id, token = hooks.device(hooks.tenant())

    hooks.http.post(
        f"{MOSQUITTO}/user", json={"username": device_id, "password": token, "clientid": device_id}
    )
    hooks.flush()

    assert (hooks.stored(device_id).state.value, hooks.stored(device_id).online) == ("activated", True)


# -- RabbitMQ ----------------------------------------------------------------------------------


def rabbit(hooks: Hooks, path: str, **params: str) -> str:
    """What rabbitmq_auth_backend_http posts (``http_method = post``: a form); the answer."""
    response = hooks.http.post(f"{RABBITMQ}/{path}", data=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def test_rabbitmq_user_path(hooks: Hooks) -> None:
    tenant = hooks.tenant()
    device_id, token = hooks.device(tenant)
    other_id, _ = hooks.device(tenant)
    revoked_id, revoked_token = hooks.device(tenant)
    assert tenant.post(f"/api/v1/devices/{revoked_id}/revoke", json={}).status_code == 200

    def user(username: str, password: str, client_id: str) -> str:
        return rabbit(hooks, "user", username=username, password=password, vhost="/", client_id=client_id)

    assert user(device_id, token, device_id) == "allow"
    assert user(device_id, "lsd_guess", device_id) == "deny"
    assert user(device_id, token, other_id) == "deny"
    assert user(revoked_id, revoked_token, revoked_id) == "deny"
    assert user("provision", "", "tb-client") == "allow"
    query = {"username": device_id, "password": token, "vhost": "/", "client_id": device_id}
    assert hooks.http.get(f"{RABBITMQ}/user", params=query).text == "allow"  # http_method = get


def test_rabbitmq_vhost_and_resource_paths(hooks: Hooks) -> None:
    device_id, _ = hooks.device(hooks.tenant())
    who = {"username": device_id, "vhost": "/", "client_id": device_id}

    def resource(kind: str, name: str, permission: str, **override: str) -> str:
        return rabbit(
            hooks, "resource", **{**who, **override}, resource=kind, name=name, permission=permission
        )

    assert rabbit(hooks, "vhost", **who, ip="127.0.0.1") == "allow"
    assert rabbit(hooks, "vhost", **{**who, "vhost": "other"}, ip="127.0.0.1") == "deny"
    assert [resource("exchange", "amq.topic", p) for p in ("read", "write", "configure")] == [
        "allow",
        "allow",
        "deny",
    ]
    assert resource("exchange", "amq.direct", "write") == "deny"
    own_queue = f"mqtt-subscription-{device_id}qos1"
    assert [resource("queue", own_queue, p) for p in ("configure", "read", "write")] == ["allow"] * 3
    assert resource("queue", "mqtt-subscription-otherqos0", "read") == "deny"
    assert resource("queue", own_queue, "read", client_id="other", username="other") == "deny"


def test_rabbitmq_topic_path_maps_routing_keys_back_to_mqtt_topics(hooks: Hooks) -> None:
    device_id, _ = hooks.device(hooks.tenant())

    def topic(routing_key: str, permission: str, username: str = device_id) -> str:
        return rabbit(
            hooks,
            "topic",
            username=username,
            vhost="/",
            resource="topic",
            name="amq.topic",
            permission=permission,
            routing_key=routing_key,
            **{
                "variable_map.client_id": username,
                "variable_map.username": username,
                "variable_map.vhost": "/",
            },
        )

    assert topic(f"devices.{device_id}.telemetry", "write") == "allow"
    assert topic(f"devices.{device_id}.commands.#", "read") == "allow"
    assert topic(f"devices.{device_id}.*.reboot", "read") == "allow"
    assert topic("devices.other.telemetry", "write") == "deny"
    assert topic("#", "read") == "deny"
    assert topic(".provision.request", "write", username="provision") == "allow"
    assert topic(".provision.response", "read", username="provision") == "allow"
    assert topic(".provision.response", "write", username="provision") == "deny"


@pytest.mark.parametrize("body", [b"", b"%%%", b"username", b"\xff"])
def test_rabbitmq_odd_bodies_are_denied(hooks: Hooks, body: bytes) -> None:
    headers = {"content-type": "application/x-www-form-urlencoded"}
    for path in ("user", "vhost", "resource", "topic"):
        response = hooks.http.post(f"{RABBITMQ}/{path}", content=body, headers=headers)
        assert (response.status_code, response.text) == (200, "deny")


def test_the_openapi_document_lists_each_hook_once(hooks: Hooks) -> None:
    document = hooks.http.get("/openapi.json")

    assert document.status_code == 200, document.text
    paths = document.json()["paths"]
    assert set(paths[f"{MOSQUITTO}/acl"]) == {"post"}
    assert set(paths[f"{RABBITMQ}/topic"]) == {"post"}
    assert {"/broker/emqx/authenticate", "/broker/vernemq/{hook}"} <= set(paths)
