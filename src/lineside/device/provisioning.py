"""Provisioning over MQTT in ThingsBoard's format (see docs/mqtt-provisioning.md).

The device connects as user ``provision`` (no password), subscribes to
``/provision/response``, publishes its request to ``/provision/request`` and reads the one
answer meant for its connection::

    request  {"provisionDeviceKey", "provisionDeviceSecret", "deviceName"?, "credentialsType"}
    answer   {"status": "SUCCESS", "credentialsType": ..., "credentialsValue": ...}
             {"status": "FAILURE" | "NOT_FOUND" | ..., "errorMsg": "..."}

What it gets (device id, token or MQTT password) goes to the flash before this returns.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from lineside.device.errors import ProvisioningFailed, UnexpectedAnswer
from lineside.device.flash import Flash
from lineside.device.mqtt import DEFAULT_TIMEOUT_SECONDS, Message, MqttEndpoint, MqttLink
from lineside.domain.mqtt import PROVISION_REQUEST_TOPIC, PROVISION_RESPONSE_TOPIC, PROVISION_USERNAME


class CredentialsType(StrEnum):
    ACCESS_TOKEN = "ACCESS_TOKEN"
    MQTT_BASIC = "MQTT_BASIC"
    X509_CERTIFICATE = "X509_CERTIFICATE"


@dataclass(frozen=True)
class Provisioned:
    """A successful answer: the device's id and the credential it now uses."""

    device_id: str
    credentials_type: CredentialsType
    token: str | None = field(default=None, repr=False)
    mqtt_password: str | None = field(default=None, repr=False)
    certificate_pem: str | None = None
    answer: dict[str, Any] = field(default_factory=dict, repr=False)


def provision(
    flash: Flash,
    *,
    provision_key: str,
    provision_secret: str,
    device_name: str | None = None,
    credentials_type: CredentialsType = CredentialsType.ACCESS_TOKEN,
    extra: Mapping[str, Any] | None = None,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> Provisioned:
    """Ask the broker in the flash (mqtt_host, mqtt_port) for credentials; store them.

    ``extra`` adds request fields (e.g. ``csr``, a PEM certificate signing request, for
    X509_CERTIFICATE: the certificate answered goes to the flash's ``extra``). Raises
    ``ProvisioningFailed`` with the server's ``errorMsg`` when the answer is not SUCCESS.
    """
    contents = flash.read()
    request: dict[str, Any] = {
        "provisionDeviceKey": provision_key,
        "provisionDeviceSecret": provision_secret,
        "credentialsType": credentials_type.value,
        **(extra or {}),
    }
    if device_name is not None:
        request["deviceName"] = device_name
    answer = _ask(MqttEndpoint(contents.mqtt_host, contents.mqtt_port), request, timeout)
    provisioned = parse_answer(answer, credentials_type)
    certificate = {"certificate_pem": provisioned.certificate_pem} if provisioned.certificate_pem else {}
    flash.update(
        device_id=provisioned.device_id,
        token=provisioned.token or contents.token,
        mqtt_password=provisioned.mqtt_password,
        extra={**contents.extra, **certificate},
    )
    return provisioned


def _ask(endpoint: MqttEndpoint, request: dict[str, Any], timeout: float) -> dict[str, Any]:
    link = MqttLink(
        endpoint,
        client_id=f"provision-{secrets.token_hex(8)}",
        username=PROVISION_USERNAME,
        password=None,
        reconnect=False,
    )
    link.connect(timeout)
    try:
        link.subscribe([PROVISION_RESPONSE_TOPIC], timeout=timeout)
        link.publish(PROVISION_REQUEST_TOPIC, json.dumps(request).encode(), qos=1, timeout=timeout)
        message = _answer_on(link, deadline=time.monotonic() + timeout)
    finally:
        link.close()
    try:
        answer = message.json()
    except ValueError:
        raise UnexpectedAnswer("The provisioning answer is not JSON.") from None
    if not isinstance(answer, dict):
        raise UnexpectedAnswer("The provisioning answer is not a JSON object.")
    return answer


def _answer_on(link: MqttLink, deadline: float) -> Message:
    """The first message on the response topic: a broker may deliver others (retained ones)."""
    while True:
        message = link.next_message(max(0.0, deadline - time.monotonic()))
        if message.topic == PROVISION_RESPONSE_TOPIC:
            return message


def parse_answer(answer: dict[str, Any], asked: CredentialsType) -> Provisioned:
    """A ThingsBoard provisioning answer as ``Provisioned`` (or ``ProvisioningFailed``)."""
    status = str(answer.get("status", ""))
    if status != "SUCCESS":
        raise ProvisioningFailed(status or "UNKNOWN", str(answer.get("errorMsg") or "no reason given"))
    kind = CredentialsType(str(answer.get("credentialsType") or asked.value))
    value = answer.get("credentialsValue")
    token = mqtt_password = certificate = None
    device_id = answer.get("deviceId")
    if kind is CredentialsType.MQTT_BASIC:
        if not isinstance(value, dict):
            raise UnexpectedAnswer("An MQTT_BASIC answer's credentialsValue is not an object.")
        device_id = device_id or value.get("clientId") or value.get("userName")
        mqtt_password = _optional_text(value.get("password"))
    elif kind is CredentialsType.ACCESS_TOKEN:
        token = _optional_text(value)
    else:
        certificate = _optional_text(value)
    if not device_id:
        raise UnexpectedAnswer("The provisioning answer does not say the device's id.")
    return Provisioned(str(device_id), kind, token, mqtt_password, certificate, answer)


def _optional_text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
