"""Golden tests of VerneMQ's webhooks: the payloads ``vmq_webhooks`` posts (with the
``vernemq-hook`` header), and the answers it understands."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from lineside.settings import Settings
from tests.support.api import assert_problem
from tests.support.broker_hooks import Hooks, running_hooks

OK = {"result": "ok"}
NOT_ALLOWED = {"result": {"error": "not_allowed"}}


@pytest.fixture(scope="module")
def hooks(settings: Settings) -> Iterator[Hooks]:
    with running_hooks(settings) as running:
        yield running


def call(hooks: Hooks, hook: str, payload: dict[str, Any], *, secret: bool = False) -> httpx.Response:
    """What VerneMQ posts to an endpoint registered for ``hook``."""
    params = {"secret": hooks.secret} if secret else None
    return hooks.http.post(
        f"/broker/vernemq/{hook}", json=payload, headers={"vernemq-hook": hook}, params=params
    )


def answer(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()


def register(device_id: str, password: str, *, client_id: str | None = None) -> dict[str, Any]:
    return {
        "peer_addr": "127.0.0.1",
        "peer_port": 8888,
        "username": device_id,
        "password": password,
        "mountpoint": "",
        "client_id": client_id or device_id,
        "clean_session": False,
    }


def test_auth_on_register_lets_a_device_in_with_its_token_only(hooks: Hooks) -> None:
    tenant = hooks.tenant()
    device_id, token = hooks.device(tenant)
    other_id, other_token = hooks.device(tenant)

    assert answer(call(hooks, "auth_on_register", register(device_id, token))) == OK
    assert answer(call(hooks, "auth_on_register", register(device_id, other_token))) == NOT_ALLOWED
    assert (
        answer(call(hooks, "auth_on_register", register(device_id, token, client_id=other_id))) == NOT_ALLOWED
    )
    assert answer(call(hooks, "auth_on_register", {"username": device_id})) == NOT_ALLOWED


def test_auth_on_register_m5_and_the_single_endpoint_dispatching_on_the_header(hooks: Hooks) -> None:
    device_id, token = hooks.device(hooks.tenant())
    payload = {**register(device_id, token), "clean_start": True, "properties": {}}
    headers = {"vernemq-hook": "auth_on_register_m5"}

    assert answer(hooks.http.post("/broker/vernemq", json=payload, headers=headers)) == OK
    assert answer(call(hooks, "auth_on_register_m5", {**payload, "password": "lsd_nope"})) == NOT_ALLOWED


def test_auth_on_publish_allows_the_devices_own_topics_only(hooks: Hooks) -> None:
    device_id, _ = hooks.device(hooks.tenant())

    def publish(topic: str) -> Any:
        payload = {"username": device_id, "client_id": device_id, "mountpoint": "", "qos": 1}
        return answer(
            call(hooks, "auth_on_publish", {**payload, "topic": topic, "payload": "aGk=", "retain": False})
        )

    assert publish(f"devices/{device_id}/telemetry") == OK
    assert publish("devices/another/telemetry") == NOT_ALLOWED
    assert publish("/provision/request") == NOT_ALLOWED


def test_auth_on_subscribe_refuses_only_the_foreign_filters(hooks: Hooks) -> None:
    device_id, _ = hooks.device(hooks.tenant())
    own = {"topic": f"devices/{device_id}/commands/#", "qos": 1}
    base = {"client_id": device_id, "mountpoint": "", "username": device_id}

    assert answer(call(hooks, "auth_on_subscribe", {**base, "topics": [own]})) == OK
    mixed = answer(call(hooks, "auth_on_subscribe", {**base, "topics": [own, {"topic": "#", "qos": 2}]}))
    assert mixed == {"result": "ok", "topics": [own, {"topic": "#", "qos": 128}]}
    m5 = answer(
        call(
            hooks,
            "auth_on_subscribe_m5",
            {**base, "topics": [{"topic": "a/b", "qos": 0}, own], "properties": {}},
        )
    )
    assert m5 == {"result": "ok", "modifiers": {"topics": [{"topic": "a/b", "qos": 135}, own]}}
    assert answer(call(hooks, "auth_on_subscribe", {**base, "topics": "nope"})) == NOT_ALLOWED


def test_on_register_and_on_client_offline_drive_presence(hooks: Hooks) -> None:
    device_id, _ = hooks.device(hooks.tenant())
    registered = {
        "peer_addr": "127.0.0.1",
        "peer_port": 8888,
        "username": device_id,
        "mountpoint": "",
        "client_id": device_id,
    }

    assert answer(call(hooks, "on_register", registered, secret=True)) == {}
    hooks.flush()
    assert (hooks.stored(device_id).online, hooks.stored(device_id).state.value) == (True, "activated")

    assert (
        answer(call(hooks, "on_client_offline", {"client_id": device_id, "mountpoint": ""}, secret=True))
        == {}
    )
    hooks.flush()
    assert hooks.stored(device_id).online is False

    assert answer(call(hooks, "on_register_m5", {**registered, "properties": {}}, secret=True)) == {}
    assert (
        answer(call(hooks, "on_client_gone", {"client_id": device_id, "mountpoint": ""}, secret=True)) == {}
    )
    hooks.flush()
    assert hooks.stored(device_id).online is False


def test_events_without_the_secret_change_nothing(hooks: Hooks) -> None:
    device_id, _ = hooks.device(hooks.tenant())

    assert_problem(call(hooks, "on_register", {"client_id": device_id, "username": device_id}), 401)
    hooks.flush()

    assert hooks.stored(device_id).online is False


def test_a_hook_lineside_does_not_implement_is_a_404(hooks: Hooks) -> None:
    assert_problem(call(hooks, "on_deliver", {"client_id": "x"}), 404)
    assert_problem(hooks.http.post("/broker/vernemq", json={}), 404)
