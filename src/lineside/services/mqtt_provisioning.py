"""Provisioning over MQTT, compatible with ThingsBoard's device SDK (see docs/mqtt-provisioning.md).

A device that has no credentials yet connects as the user ``provision``, publishes one JSON
request to ``/provision/request`` and hears the answer on ``/provision/response``::

    {"provisionDeviceKey": "...", "provisionDeviceSecret": "lsp_...",
     "deviceName": "SN-1" (optional), "credentialsType": "ACCESS_TOKEN" | "MQTT_BASIC" |
     "X509_CERTIFICATE" (default ACCESS_TOKEN), "csr": "-----BEGIN CERTIFICATE REQUEST..."}
      -> {"status": "SUCCESS", "credentialsType": ..., "credentialsValue": ..., "deviceId": ...}
       | {"status": "FAILURE", "errorMsg": "..."}

The key names a product; its secret (kept as a keyed hash) proves the firmware is the
manufacturer's. The product's enrollment policy decides what a device name may be:

    create      an unknown name becomes a new device of the product; a known one is refused
    predefined  the name must be a device defined beforehand (serial number or hardware id)
                that has not been provisioned yet; once provisioned, only the manufacturer's
                explicit re-provisioning opens it again (ThingsBoard would answer again)

Only wrong secrets count against the key's failure budget, and only wrong secrets are held
back past it: the right secret always provisions (the key is in every unit's firmware, so
anyone could otherwise pause a factory line). The secret's 256 bits are what stop guessing.
"""

from __future__ import annotations

import hmac
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from lineside.domain.device_specs import DeviceSpec, new_device, spec_problems
from lineside.domain.errors import DomainError, InvalidInput, QuotaExceeded
from lineside.domain.events import EventType, new_event
from lineside.domain.factory import normalize_hardware_id
from lineside.domain.identifiers import new_id
from lineside.domain.lifecycle import DeviceState
from lineside.domain.models import Device, EnrollmentPolicy, Product
from lineside.domain.secret_tokens import SecretKind, generate_secret
from lineside.services.context import ServiceContext
from lineside.services.credentials import issue_certificate_in
from lineside.services.ports import NewDevice, UnitOfWork
from lineside.services.quotas import check_device_quota

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 16_384  # a CSR is about 1 KiB; nothing legitimate comes near this
MAX_FIELD_LENGTH = 200
MAX_KEY_LENGTH = 64  # products.provision_key's column
MAX_CSR_LENGTH = 8_000
FAILURES_PER_WINDOW = 10
FAILURE_WINDOW = timedelta(minutes=15)
GENERATED_NAME_PREFIX = "prov-"

SUCCESS = "SUCCESS"
FAILURE = "FAILURE"


class CredentialsType(StrEnum):
    """ThingsBoard's names for what a provisioned device receives."""

    ACCESS_TOKEN = "ACCESS_TOKEN"  # a device token (lsd_): the MQTT password and HTTP bearer
    MQTT_BASIC = "MQTT_BASIC"  # an MQTT password (lsm_); client id = username = device id
    X509_CERTIFICATE = "X509_CERTIFICATE"  # a certificate from the product's CA


class ProvisioningRefused(DomainError):
    """A request the device gets a FAILURE answer for; the message is its ``errorMsg``."""


@dataclass(frozen=True, slots=True)
class ProvisionRequest:
    key: str
    secret: str
    device_name: str | None
    credentials_type: CredentialsType
    csr_pem: str | None
    device_certificate: str | None  # ThingsBoard's "hash": the device's own certificate


def answer_provision_request(ctx: ServiceContext, payload: bytes) -> dict[str, Any]:
    """The JSON answer to one ``/provision/request`` payload: never raises for bad input."""
    try:
        request = parse_request(payload)
        return _provision(ctx, request)
    except DomainError as refused:
        return failure(refused.detail)
    except Exception:
        # The payload holds a secret: it is never logged, only that something broke.
        log.exception("MQTT provisioning request failed")
        return failure("Provisioning failed on the server; try again later.")


def failure(message: str) -> dict[str, Any]:
    return {"status": FAILURE, "errorMsg": message}


def parse_request(payload: bytes) -> ProvisionRequest:
    """The request's fields, or ProvisioningRefused naming what is wrong with it."""
    if len(payload) > MAX_REQUEST_BYTES:
        raise ProvisioningRefused(f"The request is larger than {MAX_REQUEST_BYTES} bytes.")
    try:
        body = json.loads(payload)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise ProvisioningRefused("The request is not JSON.") from None
    if not isinstance(body, dict):
        raise ProvisioningRefused("The request must be a JSON object.")
    key = _text(body, "provisionDeviceKey", required=True)
    secret = _text(body, "provisionDeviceSecret", required=True)
    assert key is not None and secret is not None
    return ProvisionRequest(
        key=key,
        secret=secret,
        device_name=_text(body, "deviceName"),
        credentials_type=_credentials_type(body.get("credentialsType")),
        csr_pem=_text(body, "csr", limit=MAX_CSR_LENGTH),
        device_certificate=_text(body, "hash", limit=MAX_CSR_LENGTH),
    )


def _text(
    body: dict[str, Any], name: str, *, required: bool = False, limit: int = MAX_FIELD_LENGTH
) -> str | None:
    value = body.get(name)
    if value is None or value == "":
        if required:
            raise ProvisioningRefused(f"{name} is missing.")
        return None
    if not isinstance(value, str):
        raise ProvisioningRefused(f"{name} must be a string.")
    if len(value) > limit or "\x00" in value:
        raise ProvisioningRefused(f"{name} must be at most {limit} characters, without NUL.")
    return value


def _credentials_type(value: Any) -> CredentialsType:
    if value is None:
        return CredentialsType.ACCESS_TOKEN  # ThingsBoard's default: the server makes a token
    try:
        return CredentialsType(value)
    except ValueError:
        names = ", ".join(kind.value for kind in CredentialsType)
        raise ProvisioningRefused(f"credentialsType must be one of {names}.") from None


def _provision(ctx: ServiceContext, request: ProvisionRequest) -> dict[str, Any]:
    _check_certificate_request(request)
    # The key and secret are checked before any write begins: a stream of bad requests must
    # not hold SQLite's one writer. Checked again in the write, in case the secret just rotated.
    found = _find(ctx, request.key)
    if _opened(ctx, found, request.secret) is not None:
        # The right secret always gets through, budget or not: the key ships in every unit's
        # firmware, so a budget that also held back right secrets would let anyone who read
        # one image pause the product's whole factory line.
        with ctx.unit_of_work() as uow:
            product = _opened(ctx, uow.products.find_by_provision_key(request.key), request.secret)
            if product is not None:
                answer = _provision_in(ctx, uow, product, request)
                uow.commit()
                return answer
    if found is not None:
        _spend_failure(ctx, request.key)
    raise ProvisioningRefused("Unknown provision key or wrong provision secret.")


def _spend_failure(ctx: ServiceContext, key: str) -> None:
    """Count a wrong secret for a real key (made-up keys would leave a row each behind), and
    past the budget refuse with how long to wait, so a guesser is told to slow down and the
    operator's log shows the key under attack."""
    slot = ctx.rate_limiter.acquire(f"provision:key:{key}", FAILURES_PER_WINDOW, FAILURE_WINDOW)
    if not slot.taken:
        log.warning("provision key %s: over its budget of wrong secrets", key)
        raise ProvisioningRefused(
            f"Too many failed provisioning attempts with this key; try again in {slot.retry_after} s."
        )


def _find(ctx: ServiceContext, key: str) -> tuple[Product, str | None] | None:
    if len(key) > MAX_KEY_LENGTH:
        return None
    with ctx.unit_of_work(write=False, snapshot=False) as reader:
        return reader.products.find_by_provision_key(key)


def _check_certificate_request(request: ProvisionRequest) -> None:
    if request.credentials_type is not CredentialsType.X509_CERTIFICATE:
        return
    if request.csr_pem is None and request.device_certificate is not None:
        raise ProvisioningRefused(
            "Lineside does not register a certificate the device made itself (the 'hash' field): "
            "send a CSR in 'csr' to have it signed by the product's CA, or neither to receive "
            "a new key and certificate."
        )


def _opened(ctx: ServiceContext, found: tuple[Product, str | None] | None, secret: str) -> Product | None:
    """The product whose provisioning this secret opens, or None."""
    offered = ctx.hasher.hash(secret)
    if found is None:
        hmac.compare_digest(offered, offered)  # the same work whether or not the key exists
        return None
    product, secret_hash = found
    if secret_hash is None or not hmac.compare_digest(offered, secret_hash):
        return None
    return product


def _provision_in(
    ctx: ServiceContext, uow: UnitOfWork, product: Product, request: ProvisionRequest
) -> dict[str, Any]:
    now = ctx.clock()
    actor = f"mqtt_provisioning:{product.id}"
    if product.enrollment_policy is EnrollmentPolicy.CREATE:
        device = _create_device(ctx, uow, product, request.device_name, now, actor)
    else:
        device = _predefined_device(uow, product, request.device_name, now)
    answer = _issue(ctx, uow, product, device, request, now, actor)
    uow.events.add(
        new_event(
            EventType.DEVICE_PROVISIONED,
            device,
            actor=actor,
            at=now,
            product_id=product.id,
            serial_number=device.serial_number,
            credentials_type=request.credentials_type.value,
            policy=product.enrollment_policy.value,
        )
    )
    return answer


def _create_device(
    ctx: ServiceContext, uow: UnitOfWork, product: Product, name: str | None, now: datetime, actor: str
) -> Device:
    serial = name if name is not None else GENERATED_NAME_PREFIX + new_id()
    spec = DeviceSpec(serial_number=serial)
    problems = spec_problems(spec, product.metadata_fields)
    if problems:
        reasons = "; ".join(f"{problem.column} {problem.reason}" for problem in problems)
        raise ProvisioningRefused(f"The device cannot be defined: {reasons}.")
    if uow.devices.existing_serial_numbers(product.id, [serial]):
        raise ProvisioningRefused(
            f"A device named '{serial}' is already defined in this product; this product creates "
            "new devices only."
        )
    try:
        check_device_quota(ctx, uow, product.organization_id, 1)
    except QuotaExceeded:
        raise ProvisioningRefused("The manufacturer's device quota is used up.") from None
    device = new_device(product, spec, now, None)
    uow.devices.add_many([NewDevice(device)])
    uow.devices.set_provisioned(device.id, now)
    device.provisioned_at = now
    uow.events.add(
        new_event(
            EventType.DEVICE_DEFINED, device, actor=actor, at=now, product_id=product.id, serial_number=serial
        )
    )
    return device


def _predefined_device(uow: UnitOfWork, product: Product, name: str | None, now: datetime) -> Device:
    if name is None:
        raise ProvisioningRefused(
            "deviceName is missing: this product provisions only devices defined beforehand, "
            "named by serial number or hardware id."
        )
    device = uow.devices.find_by_serial_number(product.id, name) or _by_hardware_id(uow, product, name)
    if device is None:
        raise ProvisioningRefused(f"No device named '{name}' is defined in this product.")
    if device.state is DeviceState.REVOKED:
        raise ProvisioningRefused(f"Device '{name}' is revoked.")
    if not uow.devices.set_provisioned_if_not(device.id, now):
        raise ProvisioningRefused(
            f"Device '{name}' is already provisioned; the manufacturer must re-provision it "
            "before it can be provisioned again."
        )
    device.provisioned_at = now
    return device


def _by_hardware_id(uow: UnitOfWork, product: Product, name: str) -> Device | None:
    try:
        hardware_id = normalize_hardware_id(name)
    except InvalidInput:
        return None
    return uow.devices.find_by_hardware_id(product.id, hardware_id)


def _issue(
    ctx: ServiceContext,
    uow: UnitOfWork,
    product: Product,
    device: Device,
    request: ProvisionRequest,
    now: datetime,
    actor: str,
) -> dict[str, Any]:
    kind = request.credentials_type
    answer: dict[str, Any] = {"status": SUCCESS, "credentialsType": kind.value, "deviceId": device.id}
    if kind is CredentialsType.ACCESS_TOKEN:
        # A token the device proposes ("token") is not taken: Lineside's secrets come from
        # its own random source and carry a prefix that secret scanners know.
        token = generate_secret(SecretKind.DEVICE_TOKEN)
        rotated = device.token_issued_at is not None
        uow.devices.set_token(device.id, ctx.hasher.hash(token), now)
        answer["credentialsValue"] = token
        _record_credential(uow, device, actor, now, "token", rotated=rotated)
    elif kind is CredentialsType.MQTT_BASIC:
        # A client id, username or password the device proposes is not taken either: the
        # broker knows a device by its id, and the password is Lineside's own.
        password = generate_secret(SecretKind.MQTT_PASSWORD)
        rotated = device.mqtt_password_issued_at is not None
        uow.devices.set_mqtt_password(device.id, ctx.hasher.hash(password), now)
        answer["credentialsValue"] = {"clientId": device.id, "userName": device.id, "password": password}
        _record_credential(uow, device, actor, now, "mqtt_password", rotated=rotated)
    else:
        replaced = uow.certificates.revoke_active(device.id, now)
        issued = issue_certificate_in(ctx, uow, product, device, request.csr_pem, now)
        answer["credentialsValue"] = issued.certificate_pem
        if issued.private_key_pem is not None:
            answer["privateKey"] = issued.private_key_pem
        answer["caCertificate"] = ctx.certificate_authority.ca_certificate_pem(product.id, product.name)
        _record_credential(
            uow, device, actor, now, "x509", rotated=bool(replaced), serial=issued.serial_hex or ""
        )
    return answer


def _record_credential(
    uow: UnitOfWork, device: Device, actor: str, at: datetime, kind: str, *, rotated: bool, **data: str
) -> None:
    event_type = EventType.CREDENTIALS_ROTATED if rotated else EventType.CREDENTIALS_ISSUED
    uow.events.add(new_event(event_type, device, actor=actor, at=at, type=kind, **data))
