"""Many CONNECTs checked at once: ``authenticate_connections`` answers each attempt of a mixed
batch as the one-at-a-time check would, and the embedded broker's ``BatchedAuthenticator``
resolves every waiting CONNECT, also when the database check fails."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from lineside.adapters.mqtt.authentication import BatchedAuthenticator
from lineside.bootstrap import Application
from lineside.services.mqtt_access import (
    PROVISIONER,
    ConnectAttempt,
    MqttCredential,
    MqttIdentity,
    authenticate_connections,
)
from lineside.services.ports import UnitOfWork
from tests.support.api import Tenant
from tests.support.event_loops import run_coroutine
from tests.support.factory import API


def as_device(device_id: str, password: str | None) -> ConnectAttempt:
    return ConnectAttempt(client_id=device_id, username=device_id, password=password)


def described(identity: MqttIdentity | None) -> tuple[str, str | None] | None:
    return None if identity is None else (identity.credential.value, identity.device_id)


def test_a_mixed_batch_gets_one_answer_per_attempt_in_order(application: Application, tenant: Tenant) -> None:
    product_id = tenant.product()["id"]
    first, second, revoked = (tenant.device(product_id)["id"] for _ in range(3))
    first_token, second_token, revoked_token = (tenant.token(d) for d in (first, second, revoked))
    password = tenant.created(f"{API}/devices/{second}/credentials", {"type": "mqtt_password"})["secret"]
    assert tenant.post(f"{API}/devices/{revoked}/revoke").status_code == 200
    attempts = [
        as_device(first, first_token),
        as_device(second, password),
        as_device(second, first_token),  # another device's token
        ConnectAttempt(client_id=first, username=second, password=first_token),  # foreign client id
        as_device(first, "lsd_wrong"),
        as_device(revoked, revoked_token),
        ConnectAttempt(client_id="anything", username="provision", password=None),
        as_device(first, "not-a-secret"),
        as_device(first, None),
        as_device(second, second_token),
    ]

    identities = authenticate_connections(application.services, attempts)

    assert [described(identity) for identity in identities] == [
        (MqttCredential.TOKEN.value, first),
        (MqttCredential.MQTT_PASSWORD.value, second),
        None,
        None,
        None,
        None,
        (MqttCredential.PROVISION.value, None),
        None,
        None,
        (MqttCredential.TOKEN.value, second),
    ]
    assert identities[6] is PROVISIONER


def test_concurrent_connects_each_get_their_own_identity(application: Application, tenant: Tenant) -> None:
    product_id = tenant.product()["id"]
    devices = [tenant.device(product_id)["id"] for _ in range(40)]
    attempts = [as_device(device_id, tenant.token(device_id)) for device_id in devices]
    attempts += [as_device(device_id, "lsd_wrong") for device_id in devices[:10]]

    async def all_at_once() -> list[MqttIdentity | None]:
        authenticator = BatchedAuthenticator(application.services)
        return await asyncio.gather(*(authenticator.identify(attempt) for attempt in attempts))

    identities = run_coroutine(all_at_once())

    assert [identity.device_id if identity else None for identity in identities] == devices + [None] * 10


def test_a_failing_check_refuses_the_waiting_connects_instead_of_hanging(
    application: Application, tenant: Tenant
) -> None:
    device_id = tenant.device(tenant.product()["id"])["id"]
    token = tenant.token(device_id)
    broken = replace(application.services, unit_of_work=_database_gone)

    async def connect_twice() -> list[MqttIdentity | None]:
        authenticator = BatchedAuthenticator(broken)
        return await asyncio.gather(*(authenticator.identify(as_device(device_id, token)) for _ in range(2)))

    assert run_coroutine(connect_twice()) == [None, None]


def _database_gone(*, write: bool = True, snapshot: bool = True) -> UnitOfWork:
    raise ConnectionError("the database went away")
