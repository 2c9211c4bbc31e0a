"""The hooks of Lineside's own Mosquitto plugin (``/broker/mosquitto/tick``, ``/arrivals``
and ``/provision``, and the proof ``/user`` hands it), spoken to over a socket as the plugin
speaks to them: the lines it sends, the lines it reads back."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from urllib.parse import quote, unquote

import httpx
import pytest
from fastapi import FastAPI
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from lineside.domain.mqtt import PROVISION_RESPONSE_TOPIC, firmware_notice_topic
from lineside.entrypoints.api.fast_paths import (
    MOSQUITTO_ACL_PATH,
    MOSQUITTO_USER_PATH,
    MosquittoPluginFastPath,
)
from lineside.settings import Settings
from tests.support import firmware
from tests.support.api import Tenant
from tests.support.broker_hooks import Hooks, running_hooks
from tests.support.provisioning import provisioned_product
from tests.support.server import serving

MOSQUITTO = "/broker/mosquitto"
HOT = (MOSQUITTO_USER_PATH, MOSQUITTO_ACL_PATH)
ROUTE = Route("/", PlainTextResponse)  # a label for the metrics; never called


@pytest.fixture(scope="module")
def hooks(settings: Settings) -> Iterator[Hooks]:
    with running_hooks(settings) as running:
        yield running


def user(
    hooks: Hooks, device_id: str, password: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    """The plugin's CONNECT question: a form, as it sends it."""
    body = {"username": device_id, "password": password, "clientid": device_id}
    return hooks.http.post(f"{MOSQUITTO}/user", data=body, headers=headers or {})


def proof_of(hooks: Hooks, device_id: str, token: str) -> str:
    answer = user(hooks, device_id, token, hooks.bearer)
    assert answer.status_code == 200, answer.text
    return answer.headers["x-lineside-proof"]


def tick(hooks: Hooks, *lines: str) -> dict[str, list[str]]:
    """One tick; the answer's lines by their first word, fields URL-decoded."""
    response = hooks.http.post(
        f"{MOSQUITTO}/tick", content="".join(f"{line}\n" for line in lines), headers=hooks.bearer
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    said: dict[str, list[str]] = {"cursor": [], "kick": [], "publish": []}
    for line in response.text.splitlines():
        word, _, rest = line.partition(" ")
        said[word].append(rest)
    return said


def connected(device_id: str, proof: str) -> str:
    return f"connected {quote(device_id, safe='')} {quote(proof, safe='')}"


def arrived(device_id: str, proof: str) -> str:
    return f"arrived {quote(device_id, safe='')} {quote(proof, safe='')}"


def arrivals(hooks: Hooks, *lines: str) -> list[str]:
    """The plugin's report of the devices it accepted itself; the client ids it must kick."""
    response = hooks.http.post(
        f"{MOSQUITTO}/arrivals", content="".join(f"{line}\n" for line in lines), headers=hooks.bearer
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    kicked = []
    for line in response.text.splitlines():
        word, _, client_id = line.partition(" ")
        assert word == "kick", line
        kicked.append(unquote(client_id))
    return kicked


def own_proof(hooks: Hooks, secret: str) -> str:
    """The proof the plugin computes itself (the keyed hash under the server key), without
    asking ``/user``, which would record the connection on its own."""
    return hooks.application.services.hasher.hash(secret)


def mqtt_password(tenant: Tenant, device_id: str) -> str:
    body = {"type": "mqtt_password"}
    secret: str = tenant.created(f"/api/v1/devices/{device_id}/credentials", body)["secret"]
    return secret


def untouched(hooks: Hooks, device_id: str) -> bool:
    """Never connected: neither online nor activated."""
    stored = hooks.stored(device_id)
    return stored.online is False and stored.state.value == "defined" and stored.last_seen_at is None


def test_the_proof_goes_only_to_a_caller_with_the_hook_secret(hooks: Hooks) -> None:
    device_id, token = hooks.device(hooks.tenant())

    plain = user(hooks, device_id, token)
    plugin = user(hooks, device_id, token, hooks.bearer)
    wrong = user(hooks, device_id, "lsd_" + "x" * 43, hooks.bearer)
    guessed = user(hooks, device_id, token, {"Authorization": "Bearer not-the-secret"})

    assert plain.status_code == 200 and "x-lineside-proof" not in plain.headers
    assert plugin.status_code == 200 and len(plugin.headers["x-lineside-proof"]) >= 32
    assert token not in plugin.headers["x-lineside-proof"]
    assert wrong.status_code == 403 and "x-lineside-proof" not in wrong.headers
    assert guessed.status_code == 200 and "x-lineside-proof" not in guessed.headers


def test_the_first_tick_gets_the_cursor_and_cuts_nobody_off(hooks: Hooks) -> None:
    device_id, token = hooks.device(hooks.tenant())

    said = tick(hooks, connected(device_id, proof_of(hooks, device_id, token)))

    assert said["kick"] == [] and said["publish"] == []
    assert len(said["cursor"]) == 1 and said["cursor"][0].isdigit()


@pytest.mark.parametrize("ending", ["revoke", "delete", "new token"])
def test_a_connection_whose_credential_stopped_holding_is_kicked(hooks: Hooks, ending: str) -> None:
    tenant = hooks.tenant()
    device_id, token = hooks.device(tenant)
    keeper_id, keeper_token = hooks.device(tenant)
    lines = [connected(device_id, proof_of(hooks, device_id, token))]
    lines.append(connected(keeper_id, proof_of(hooks, keeper_id, keeper_token)))
    assert tick(hooks, *lines)["kick"] == []

    if ending == "revoke":
        assert tenant.post(f"/api/v1/devices/{device_id}/revoke").status_code == 200
    elif ending == "delete":
        assert tenant.delete(f"/api/v1/devices/{device_id}").status_code == 204
    else:
        tenant.token(device_id)  # a new token replaces the one the connection used

    assert [unquote(kicked) for kicked in tick(hooks, *lines)["kick"]] == [device_id]
    hooks.flush()
    if ending != "delete":  # a kicked connection is gone: the plugin reports no departure for it
        assert hooks.stored(device_id).online is False
    assert hooks.stored(keeper_id).online is True


def test_a_forged_proof_is_kicked(hooks: Hooks) -> None:
    device_id, _ = hooks.device(hooks.tenant())

    assert tick(hooks, connected(device_id, "0" * 64))["kick"] == [device_id]


def test_a_disconnection_takes_the_device_offline(hooks: Hooks) -> None:
    device_id, token = hooks.device(hooks.tenant())
    proof_of(hooks, device_id, token)
    hooks.flush()
    assert (hooks.stored(device_id).state.value, hooks.stored(device_id).online) == ("activated", True)

    tick(hooks, f"disconnected {quote(device_id, safe='')}")
    hooks.flush()

    assert hooks.stored(device_id).online is False


def test_a_device_that_left_and_came_back_within_a_tick_stays_online(hooks: Hooks) -> None:
    device_id, token = hooks.device(hooks.tenant())
    first = proof_of(hooks, device_id, token)
    second = proof_of(hooks, device_id, token)  # connected again before the tick

    tick(hooks, connected(device_id, second), f"disconnected {quote(device_id, safe='')}")
    hooks.flush()

    assert first == second and hooks.stored(device_id).online is True


def test_the_provision_user_is_refused_a_devices_client_id(hooks: Hooks) -> None:
    device_id, _ = hooks.device(hooks.tenant())
    ask = {"username": "provision", "password": ""}

    as_device = hooks.http.post(f"{MOSQUITTO}/user", data={**ask, "clientid": device_id})
    as_plugin = hooks.http.post(
        f"{MOSQUITTO}/user", data={**ask, "clientid": device_id}, headers=hooks.bearer
    )
    own_id = hooks.http.post(f"{MOSQUITTO}/user", data={**ask, "clientid": "provisioner-7"})
    unknown_uuid = hooks.http.post(f"{MOSQUITTO}/user", data={**ask, "clientid": str(uuid.uuid4())})

    assert (as_device.status_code, as_plugin.status_code) == (403, 403)
    assert (own_id.status_code, unknown_uuid.status_code) == (200, 200)


def test_a_deployment_after_the_cursor_is_published_to_each_member(hooks: Hooks) -> None:
    tenant = hooks.tenant()
    product_id = tenant.product()["id"]
    group = firmware.group(tenant, product_id, "production")
    member_id = tenant.device(product_id)["id"]
    firmware.place(hooks.application, member_id, group["id"])
    (cursor,) = tick(hooks)["cursor"]
    release = firmware.release(tenant, product_id)

    firmware.deployed(tenant, group["id"], release["id"])
    said = tick(hooks, f"cursor {cursor}")

    (publish,) = said["publish"]
    topic, qos, payload, retain = publish.split(" ")
    notice = json.loads(base64.b64decode(payload))
    assert (unquote(topic), qos, retain) == (firmware_notice_topic(member_id), "1", "retain")
    assert (notice["release_id"], notice["version"]) == (release["id"], release["version"])
    assert int(said["cursor"][0]) > int(cursor)
    assert tick(hooks, f"cursor {said['cursor'][0]}")["publish"] == []  # told once


@pytest.mark.parametrize(
    "body",
    [
        "",
        "kick x\n",
        "connected\n",
        "cursor -1\ncursor x\n",
        "cursor \u00b2\n",
        "\x00\xff garbage",
        "connected a%00b 00\n",
    ],
)
def test_odd_ticks_are_answered_not_failed(hooks: Hooks, body: str) -> None:
    response = hooks.http.post(f"{MOSQUITTO}/tick", content=body.encode("utf-8"), headers=hooks.bearer)

    assert response.status_code == 200
    assert response.text.startswith("cursor ")
    assert "kick" not in response.text


@pytest.mark.parametrize("path", ["tick", "provision"])
def test_the_plugins_hooks_need_the_secret(hooks: Hooks, path: str) -> None:
    missing = hooks.http.post(f"{MOSQUITTO}/{path}", content=b"cursor 1\n")
    wrong = hooks.http.post(f"{MOSQUITTO}/{path}", content=b"", headers={"Authorization": "Bearer nope"})

    assert missing.status_code == 401 and wrong.status_code == 401
    assert missing.headers["content-type"] == "application/problem+json"


def test_a_provision_request_is_answered_for_its_connection(hooks: Hooks) -> None:
    settings = provisioned_product(hooks.tenant())
    request = {
        "provisionDeviceKey": settings["provision_key"],
        "provisionDeviceSecret": settings["provision_secret"],
        "deviceName": "SN-PLUGIN-1",
    }

    answer = hooks.http.post(
        f"{MOSQUITTO}/provision",
        data={"clientid": "anything", "payload": json.dumps(request)},
        headers=hooks.bearer,
    )
    refused = hooks.http.post(
        f"{MOSQUITTO}/provision", data={"clientid": "x", "payload": "not json"}, headers=hooks.bearer
    )

    assert answer.status_code == 200 and answer.headers["x-lineside-topic"] == PROVISION_RESPONSE_TOPIC
    body = answer.json()
    assert body["status"] == "SUCCESS" and body["credentialsValue"].startswith("lsd_")
    assert refused.status_code == 200 and refused.json()["status"] == "FAILURE"


# -- /arrivals: the devices the plugin accepted itself ------------------------------------------


def test_the_proof_the_plugin_computes_is_the_one_user_hands_out(hooks: Hooks) -> None:
    device_id, token = hooks.device(hooks.tenant())

    assert own_proof(hooks, token) == proof_of(hooks, device_id, token)


@pytest.mark.parametrize("credential", ["token", "mqtt password"])
def test_a_device_the_plugin_accepted_is_marked_connected_and_activated(
    hooks: Hooks, credential: str
) -> None:
    tenant = hooks.tenant()
    device_id, token = hooks.device(tenant)
    secret = token if credential == "token" else mqtt_password(tenant, device_id)
    hooks.flush()
    assert untouched(hooks, device_id)

    kicked = arrivals(hooks, arrived(device_id, own_proof(hooks, secret)))
    hooks.flush()

    stored = hooks.stored(device_id)
    assert kicked == []
    assert (stored.state.value, stored.online) == ("activated", True)
    assert stored.last_seen_at is not None


@pytest.mark.parametrize("ending", ["new token", "revoke", "forged"])
def test_an_arrival_whose_credential_changed_is_kicked_and_not_connected(hooks: Hooks, ending: str) -> None:
    tenant = hooks.tenant()
    device_id, token = hooks.device(tenant)
    keeper_id, keeper_token = hooks.device(tenant)
    proof = own_proof(hooks, token)  # read by the plugin, before the change

    if ending == "new token":
        tenant.token(device_id)  # a new token replaces the one the device connected with
    elif ending == "revoke":
        assert tenant.post(f"/api/v1/devices/{device_id}/revoke").status_code == 200
    else:
        proof = "0" * 64
    kicked = arrivals(hooks, arrived(device_id, proof), arrived(keeper_id, own_proof(hooks, keeper_token)))
    hooks.flush()

    assert kicked == [device_id]
    stored = hooks.stored(device_id)
    assert stored.online is False and stored.last_seen_at is None
    assert stored.state.value == ("revoked" if ending == "revoke" else "defined")
    assert (hooks.stored(keeper_id).state.value, hooks.stored(keeper_id).online) == ("activated", True)


def test_arrivals_need_the_secret(hooks: Hooks) -> None:
    device_id, token = hooks.device(hooks.tenant())
    body = f"{arrived(device_id, own_proof(hooks, token))}\n".encode()

    missing = hooks.http.post(f"{MOSQUITTO}/arrivals", content=body)
    wrong = hooks.http.post(f"{MOSQUITTO}/arrivals", content=body, headers={"Authorization": "Bearer nope"})
    hooks.flush()

    assert missing.status_code == 401 and wrong.status_code == 401
    assert missing.headers["content-type"] == "application/problem+json"
    assert wrong.headers["content-type"] == "application/problem+json"
    assert "kick" not in missing.text + wrong.text
    assert untouched(hooks, device_id)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\n\n",
        b"arrived\n",
        b"arrived x\n",
        b"arrived  \n",
        b"arrived x y z\n",
        b"kick x\n",
        b"cursor 1\n",
        b"connected x 00\ndisconnected x\n",  # a tick's lines: not arrivals
        b"arrived a%00b 00\n",  # a NUL no client id holds (PostgreSQL text refuses it)
        b"\x00\xff\xfe garbage\r\narrived \xff",
    ],
)
def test_odd_arrivals_are_answered_not_failed(hooks: Hooks, body: bytes) -> None:
    response = hooks.http.post(f"{MOSQUITTO}/arrivals", content=body, headers=hooks.bearer)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == ""


def test_an_arrival_of_no_known_device_is_kicked_not_failed(hooks: Hooks) -> None:
    strangers = ["not-a-device", str(uuid.uuid4()), "\u00e9t\u00e9 %", "x" * 300]

    kicked = arrivals(hooks, *(arrived(client_id, "0" * 64) for client_id in strangers))

    assert sorted(kicked) == sorted(strangers)


# -- the plugin's /user and /acl, answered before the framework (api.fast_paths) ---------------


def both_ways(hooks: Hooks, path: str, body: dict[str, str]) -> tuple[httpx.Response, httpx.Response]:
    """The same question asked as the plugin asks it (a form with the secret: the fast path)
    and as mosquitto-go-auth would (no secret: the framework's route)."""
    plugin = hooks.http.post(f"{MOSQUITTO}/{path}", data=body, headers=hooks.bearer)
    go_auth = hooks.http.post(f"{MOSQUITTO}/{path}", data=body)
    return plugin, go_auth


def test_the_fast_path_answers_as_the_routes_do(hooks: Hooks) -> None:
    device_id, token = hooks.device(hooks.tenant())
    own, foreign = f"devices/{device_id}/state", "devices/someone-else/state"
    questions = [
        ("user", {"username": device_id, "password": token, "clientid": device_id}),
        ("user", {"username": device_id, "password": "lsd_" + "x" * 43, "clientid": device_id}),
        ("user", {"username": device_id, "password": token, "clientid": "another"}),
        ("user", {"username": "provision", "password": "", "clientid": "anything"}),
        ("acl", {"username": device_id, "clientid": device_id, "topic": own, "acc": "2"}),
        ("acl", {"username": device_id, "clientid": device_id, "topic": foreign, "acc": "4"}),
        ("acl", {"username": device_id, "clientid": device_id, "topic": own, "acc": "9"}),
        ("acl", {"username": "provision", "clientid": "p", "topic": "/provision/request", "acc": "2"}),
        ("acl", {"username": "provision", "clientid": "p", "topic": own, "acc": "1"}),
    ]

    answers = [both_ways(hooks, path, body) for path, body in questions]

    statuses = [plugin.status_code for plugin, _ in answers]
    assert statuses == [200, 403, 403, 200, 200, 403, 403, 200, 403]
    for plugin, go_auth in answers:
        assert (plugin.status_code, plugin.content) == (go_auth.status_code, go_auth.content)
        assert plugin.headers["content-type"] == go_auth.headers["content-type"] == "application/json"
    assert len(answers[0][0].headers["x-lineside-proof"]) >= 32
    assert "x-lineside-proof" not in answers[0][1].headers


def test_the_fast_path_records_the_connection_and_the_publish(hooks: Hooks) -> None:
    device_id, token = hooks.device(hooks.tenant())

    proof_of(hooks, device_id, token)
    hooks.flush()
    first_seen = hooks.stored(device_id).last_seen_at
    acl = {"username": device_id, "clientid": device_id, "topic": f"devices/{device_id}/t", "acc": "2"}
    assert hooks.http.post(f"{MOSQUITTO}/acl", data=acl, headers=hooks.bearer).status_code == 200
    hooks.flush()

    stored = hooks.stored(device_id)
    assert (stored.state.value, stored.online) == ("activated", True)
    assert first_seen is not None and stored.last_seen_at is not None and stored.last_seen_at >= first_seen


def test_what_the_fast_path_does_not_answer_reaches_the_routes_whole(hooks: Hooks) -> None:
    device_id, token = hooks.device(hooks.tenant())
    # A certificate's name as username: the route looks the certificate up (none: refused).
    named = {"username": "CN=SN-1", "clientid": device_id, "topic": f"devices/{device_id}/t", "acc": "2"}
    # A body past the fast path's limit: handed on as it came, and still answered.
    padded = {"username": device_id, "password": token, "clientid": device_id, "pad": "x" * 70_000}
    # Not a form: the route reads JSON too.
    as_json = {"username": device_id, "password": token, "clientid": device_id}

    by_name = hooks.http.post(f"{MOSQUITTO}/acl", data=named, headers=hooks.bearer)
    big = hooks.http.post(f"{MOSQUITTO}/user", data=padded, headers=hooks.bearer)
    json_user = hooks.http.post(f"{MOSQUITTO}/user", json=as_json, headers=hooks.bearer)

    assert (by_name.status_code, by_name.json()["ok"]) == (403, False)
    assert (big.status_code, big.json()) == (200, {"ok": True, "error": ""})
    assert json_user.status_code == 200 and json_user.headers["x-lineside-proof"]


def test_the_plugins_own_questions_never_reach_the_framework(hooks: Hooks) -> None:
    reached: list[str] = []
    framework = FastAPI()

    @framework.post("/{path:path}", status_code=418)
    def anything(path: str) -> str:
        reached.append(path)
        return "the framework"

    framework.add_middleware(
        MosquittoPluginFastPath, application=hooks.application, routes={path: ROUTE for path in HOT}
    )
    device_id, token = hooks.device(hooks.tenant())
    acl = {"username": device_id, "clientid": device_id, "topic": f"devices/{device_id}/t", "acc": "2"}
    user = {"username": device_id, "password": token, "clientid": device_id}
    with serving(framework) as url, httpx.Client(base_url=url) as client:
        answers = [
            client.post(f"{MOSQUITTO}/user", data=user, headers=hooks.bearer),
            client.post(f"{MOSQUITTO}/acl", data=acl, headers=hooks.bearer),
        ]
        handed_on = [
            client.post(f"{MOSQUITTO}/user", data=user),  # no secret: go-auth's
            client.post(f"{MOSQUITTO}/user", json=user, headers=hooks.bearer),  # not a form
            client.post(f"{MOSQUITTO}/tick", data=user, headers=hooks.bearer),  # another path
        ]

    assert [a.status_code for a in answers] == [200, 200] and answers[0].headers["x-lineside-proof"]
    assert [a.status_code for a in handed_on] == [418, 418, 418]
    assert reached == ["broker/mosquitto/user", "broker/mosquitto/user", "broker/mosquitto/tick"]
