"""A product's MQTT provisioning, as its manufacturer manages it: issue or rotate the
provision secret, read the settings, disable it, and re-open a provisioned device.

The provision key is public (it names the product in a request, like ThingsBoard's
``provisionDeviceKey``) and stays the same across rotations, so firmware that carries it needs
a new secret only. The secret (``lsp_``) is shown once and stored as a keyed hash; issuing a
new one stops the old at once. Disabling forgets the secret but keeps the key.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from lineside.domain.errors import Conflict
from lineside.domain.events import DomainEvent, EventType, new_event
from lineside.domain.lifecycle import DeviceState
from lineside.domain.models import Device, EnrollmentPolicy, Principal, Product, Scope
from lineside.domain.secret_tokens import SecretKind, generate_secret
from lineside.services.context import ServiceContext, require
from lineside.services.credentials import revoke_all_in
from lineside.services.lookups import load_device, load_product
from lineside.services.ports import UnitOfWork

PROVISION_KEY_PREFIX = "lpk_"  # public: not a secret kind, no scanner needs to flag it


@dataclass(frozen=True, slots=True)
class ProvisioningSettings:
    product_id: str
    provision_key: str | None
    enabled: bool
    policy: EnrollmentPolicy
    provision_secret: str | None = None  # only in the answer that issued it


def configure_provisioning(
    ctx: ServiceContext,
    principal: Principal,
    product_id: str,
    before_commit: Callable[[ProvisioningSettings], None] | None = None,
) -> ProvisioningSettings:
    """Enable provisioning with a new secret, or rotate it: the previous secret stops at once.

    ``before_commit`` sees the new secret while the transaction is open (to keep it in a
    file that is synced before the secret becomes valid)."""
    require(principal, Scope.FACTORY)
    secret = generate_secret(SecretKind.PROVISION_SECRET)
    with ctx.unit_of_work() as uow:
        product = load_product(uow, principal, product_id)
        key = product.provision_key or PROVISION_KEY_PREFIX + secrets.token_urlsafe(16)
        rotated = _secret_hash(uow, product) is not None
        uow.products.set_provisioning(product.id, key, ctx.hasher.hash(secret))
        uow.events.add(
            _product_event(
                EventType.PRODUCT_PROVISIONING_CONFIGURED,
                product,
                principal.actor,
                ctx.clock(),
                provision_key=key,
                secret_rotated=rotated,
            )
        )
        configured = ProvisioningSettings(product.id, key, True, product.enrollment_policy, secret)
        if before_commit is not None:
            before_commit(configured)
        uow.commit()
    return configured


def get_provisioning(ctx: ServiceContext, principal: Principal, product_id: str) -> ProvisioningSettings:
    require(principal, Scope.READ)
    with ctx.unit_of_work(write=False) as uow:
        product = load_product(uow, principal, product_id)
        enabled = _secret_hash(uow, product) is not None
    return ProvisioningSettings(product.id, product.provision_key, enabled, product.enrollment_policy)


def disable_provisioning(ctx: ServiceContext, principal: Principal, product_id: str) -> None:
    """Forget the secret (requests with it fail from now on); the key stays for a later enable.
    Disabling again changes nothing."""
    require(principal, Scope.FACTORY)
    with ctx.unit_of_work() as uow:
        product = load_product(uow, principal, product_id)
        if _secret_hash(uow, product) is None:
            return
        uow.products.set_provisioning(product.id, product.provision_key, None)
        uow.events.add(
            _product_event(EventType.PRODUCT_PROVISIONING_DISABLED, product, principal.actor, ctx.clock())
        )
        uow.commit()


def allow_reprovisioning(ctx: ServiceContext, principal: Principal, device_id: str) -> Device:
    """Let a provisioned device provision once more (a refurbished or re-flashed unit).

    Every credential it holds is revoked in the same transaction: whatever the first
    provisioning handed out may be in someone else's hands now, and a live connection using
    it is dropped by the broker's periodic check.
    """
    require(principal, Scope.FACTORY)
    with ctx.unit_of_work() as uow:
        device = load_device(uow, principal, device_id)
        if device.state is DeviceState.REVOKED:
            raise Conflict("The device is revoked; it cannot be provisioned again.")
        if device.provisioned_at is None:
            raise Conflict("The device has not been provisioned; there is nothing to re-open.")
        now = ctx.clock()
        previously = device.provisioned_at
        uow.devices.set_provisioned(device.id, None)
        uow.devices.clear_mqtt_password(device.id)
        revoke_all_in(uow, principal, device, now)
        uow.events.add(
            new_event(
                EventType.DEVICE_REPROVISIONING_ALLOWED,
                device,
                actor=principal.actor,
                at=now,
                serial_number=device.serial_number,
                previously_provisioned_at=previously.isoformat(),
            )
        )
        uow.commit()
    device.provisioned_at = None
    return device


def _secret_hash(uow: UnitOfWork, product: Product) -> str | None:
    if product.provision_key is None:
        return None
    found = uow.products.find_by_provision_key(product.provision_key)
    return found[1] if found else None


def _product_event(
    event_type: EventType, product: Product, actor: str, at: datetime, **data: object
) -> DomainEvent:
    return new_event(event_type, product, actor=actor, at=at, **data)
