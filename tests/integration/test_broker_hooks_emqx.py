"""Golden tests of EMQX 5's contract: the bodies EMQX sends with the configuration of
docs/brokers.md (HTTP authentication, HTTP authorisation, a webhook on client events), and
the exact answers it expects."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from lineside.entrypoints.api.routes.broker_hooks.presence import flushing_presence
from lineside.settings import Settings
from tests.support.api import assert_problem
from tests.support.broker_hooks import Hooks, running_hooks
from tests.support.event_loops import run_coroutine

AUTHENTICATE = "/broker/emqx/authenticate"
AUTHORIZE = "/broker/emqx/authorize"
EVENTS = "/broker/emqx/events"
ALLOW = {"result": "allow", "is_superuser": False}
DENY = {"result": "deny"}


@pytest.fixture(scope="module")
def hooks(settings: Settings) -> Iterator[Hooks]:
    with running_hooks(settings) as running:
        yield running


def authn(device_id: str, password: str, *, clientid: str | None = None) -> dict[str, Any]:
    """The body of the authentication request, as EMQX renders its template."""
    return {
        "clientid": clientid or device_id,
        "username": device_id,
        "password": password,
        "peerhost": "10.0.0.7",
        "cert_subject": "",
        "cert_common_name": "",
    }


def authz(device_id: str, topic: str, action: str, *, clientid: str | None = None) -> dict[str, Any]:
    return {
        "clientid": clientid or device_id,
        "username": device_id,
        "peerhost": "10.0.0.7",
        "topic": topic,
        "action": action,
        "qos": "1",
        "retain": "false",
    }


def answer(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()


def test_a_device_with_its_token_is_allowed_and_never_a_superuser(hooks: Hooks) -> None:
    tenant = hooks.tenant()
    device_id, token = hooks.device(tenant)

    assert answer(hooks.http.post(AUTHENTICATE, json=authn(device_id, token))) == ALLOW


def test_a_device_may_use_its_mqtt_password_instead_of_its_token(hooks: Hooks) -> None:
    tenant = hooks.tenant()
    device_id, _ = hooks.device(tenant)
    password: str = tenant.created(f"/api/v1/devices/{device_id}/credentials", {"type": "mqtt_password"})[
        "secret"
    ]

    assert password.startswith("lsm_")
    assert answer(hooks.http.post(AUTHENTICATE, json=authn(device_id, password))) == ALLOW
    assert answer(hooks.http.post(AUTHENTICATE, json=authn(device_id, password[:-2]))) == DENY


def test_wrong_password_foreign_client_id_revoked_device_and_strangers_are_denied_alike(hooks: Hooks) -> None:
    tenant = hooks.tenant()
    device_id, token = hooks.device(tenant)
    other_id, other_token = hooks.device(tenant)
    stranger_id, stranger_token = hooks.device(hooks.tenant())  # another organization's
    revoked_id, revoked_token = hooks.device(tenant)
    assert tenant.post(f"/api/v1/devices/{revoked_id}/revoke", json={}).status_code == 200

    attempts = [
        authn(device_id, token[:-1] + ("A" if token[-1] != "A" else "B")),
        authn(device_id, token, clientid=other_id),  # its own token, another client id
        authn(device_id, other_token),  # another device's token
        authn(device_id, stranger_token),
        authn(stranger_id, token),
        authn(revoked_id, revoked_token),
        authn(device_id, ""),
        authn("no-such-device", token),
    ]

    answers = [hooks.http.post(AUTHENTICATE, json=attempt) for attempt in attempts]
    # One answer for every refusal, byte for byte: nothing tells a guesser which part was wrong.
    assert {(a.status_code, a.content) for a in answers} == {(200, b'{"result":"deny"}')}
    assert answer(hooks.http.post(AUTHENTICATE, json=authn(stranger_id, stranger_token))) == ALLOW


def test_emqx_configured_with_get_sends_the_same_fields_in_the_query(hooks: Hooks) -> None:
    device_id, token = hooks.device(hooks.tenant())
    topic = {"clientid": device_id, "username": device_id, "topic": f"devices/{device_id}/state"}

    assert answer(hooks.http.get(AUTHENTICATE, params=authn(device_id, token))) == ALLOW
    assert answer(hooks.http.get(AUTHORIZE, params={**topic, "action": "publish"})) == {"result": "allow"}


def test_the_provisioning_user_is_allowed_in_with_no_password(hooks: Hooks) -> None:
    body = {"clientid": "any-client", "username": "provision", "password": ""}

    assert answer(hooks.http.post(AUTHENTICATE, json=body)) == ALLOW


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b"[]",
        b'"text"',
        b"null",
        b'{"clientid": 7, "username": ["x"], "password": {}}',
        b"\xff\xfe",
    ],
)
def test_odd_bodies_are_denied_never_an_error(hooks: Hooks, body: bytes) -> None:
    response = hooks.http.post(AUTHENTICATE, content=body, headers={"content-type": "application/json"})

    assert answer(response) == DENY


def test_a_device_publishes_and_subscribes_only_under_its_own_prefix(hooks: Hooks) -> None:
    device_id, _ = hooks.device(hooks.tenant())
    other_id, _ = hooks.device(hooks.tenant())
    cases = [
        (f"devices/{device_id}/telemetry", "publish", "allow"),
        (f"devices/{device_id}/commands/#", "subscribe", "allow"),
        (f"devices/{device_id}/+/reboot", "subscribe", "allow"),
        (f"devices/{device_id}/commands/#", "publish", "deny"),
        (f"devices/{other_id}/telemetry", "publish", "deny"),
        (f"devices/{other_id}/commands/#", "subscribe", "deny"),
        ("devices/+/telemetry", "subscribe", "deny"),
        ("#", "subscribe", "deny"),
        ("$SYS/brokers", "subscribe", "deny"),
        ("/provision/request", "publish", "deny"),
        (f"devices/{device_id}/telemetry", "all", "deny"),
    ]

    results = [answer(hooks.http.post(AUTHORIZE, json=authz(device_id, t, a)))["result"] for t, a, _ in cases]

    assert results == [expected for _, _, expected in cases]


def test_a_connection_whose_client_id_is_not_its_username_may_not_use_any_topic(hooks: Hooks) -> None:
    device_id, _ = hooks.device(hooks.tenant())
    body = authz(device_id, f"devices/{device_id}/telemetry", "publish", clientid="someone-else")

    assert answer(hooks.http.post(AUTHORIZE, json=body)) == DENY


def test_the_provisioning_user_only_asks_and_hears_answers(hooks: Hooks) -> None:
    def result(topic: str, action: str) -> str:
        body = {"clientid": "tb-1", "username": "provision", "topic": topic, "action": action}
        verdict: str = answer(hooks.http.post(AUTHORIZE, json=body))["result"]
        return verdict

    assert result("/provision/request", "publish") == "allow"
    assert result("/provision/response", "subscribe") == "allow"
    assert result("/provision/response", "publish") == "deny"
    assert result("devices/x/telemetry", "publish") == "deny"


def test_authentication_then_client_events_drive_presence_and_activation(hooks: Hooks) -> None:
    tenant = hooks.tenant()
    device_id, token = hooks.device(tenant)
    assert hooks.stored(device_id).state.value == "defined"

    assert answer(hooks.http.post(AUTHENTICATE, json=authn(device_id, token))) == ALLOW
    hooks.flush()
    connected = hooks.stored(device_id)
    assert (connected.state.value, connected.online) == ("activated", True)

    disconnected = {
        "event": "client.disconnected",
        "clientid": device_id,
        "username": device_id,
        "reason": "normal",
    }
    assert hooks.http.post(EVENTS, json=disconnected, headers=hooks.bearer).status_code == 204
    hooks.flush()
    assert hooks.stored(device_id).online is False

    event = {"event": "client.connected", "clientid": device_id, "username": device_id, "keepalive": 60}
    assert hooks.http.post(EVENTS, json=event, headers=hooks.bearer).status_code == 204
    hooks.flush()
    assert hooks.stored(device_id).online is True


def test_the_old_connection_of_a_device_that_reconnected_does_not_take_it_offline(hooks: Hooks) -> None:
    device_id, token = hooks.device(hooks.tenant())
    assert answer(hooks.http.post(AUTHENTICATE, json=authn(device_id, token))) == ALLOW
    hooks.flush()

    replaced = {
        "event": "client.disconnected",
        "clientid": device_id,
        "username": device_id,
        "reason": "takenover",
    }
    assert hooks.http.post(EVENTS, json=replaced, headers=hooks.bearer).status_code == 204
    hooks.flush()

    assert hooks.stored(device_id).online is True


def test_client_events_need_the_hook_secret(hooks: Hooks) -> None:
    device_id, _ = hooks.device(hooks.tenant())
    event = {"event": "client.connected", "clientid": device_id, "username": device_id}

    assert_problem(hooks.http.post(EVENTS, json=event), 401)
    assert_problem(hooks.http.post(EVENTS, json=event, headers={"Authorization": "Bearer guess"}), 401)
    assert_problem(hooks.http.post(EVENTS, json=event, params={"secret": hooks.secret + "x"}), 401)
    hooks.flush()
    assert hooks.stored(device_id).online is False
    assert hooks.http.post(EVENTS, json=event, params={"secret": hooks.secret}).status_code == 204


def test_client_events_are_refused_while_no_hook_secret_is_configured(client: httpx.Client) -> None:
    event = {"event": "client.connected", "clientid": "x", "username": "x"}

    body = assert_problem(client.post(EVENTS, json=event, headers={"Authorization": "Bearer anything"}), 403)

    assert "LINESIDE_BROKER_HOOK_SECRET" in body["detail"]


def test_the_app_lifespan_flushes_what_the_hooks_recorded(settings: Settings) -> None:
    quick = settings.model_copy(update={"presence_flush_seconds": 0.05, "webhook_worker": False})
    with running_hooks(quick) as hooks:
        device_id, token = hooks.device(hooks.tenant())

        async def scenario() -> bool:
            async with flushing_presence(hooks.app):
                await asyncio.to_thread(hooks.http.post, AUTHENTICATE, json=authn(device_id, token))
                deadline = time.monotonic() + 10.0
                while not (await asyncio.to_thread(hooks.stored, device_id)).online:
                    assert time.monotonic() < deadline, "the lifespan never flushed"
                    await asyncio.sleep(0.01)  # polling for a condition, with a deadline
                return True

        assert run_coroutine(scenario())


def test_the_app_lifespan_flushes_once_more_when_the_app_stops(settings: Settings) -> None:
    slow = settings.model_copy(update={"presence_flush_seconds": 60.0, "webhook_worker": False})
    with running_hooks(slow) as hooks:
        device_id, token = hooks.device(hooks.tenant())

        async def scenario() -> None:
            async with flushing_presence(hooks.app):
                await asyncio.to_thread(hooks.http.post, AUTHENTICATE, json=authn(device_id, token))

        run_coroutine(scenario())

        assert hooks.stored(device_id).online is True
