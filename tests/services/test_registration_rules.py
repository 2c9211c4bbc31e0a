"""Factory PKI rules on fakes (the X.509 inspector is the real one: pure computation): a CA is
registered and proven before it trusts anything; a device it signed registers once; the
product's policy decides who (open, allow-list, approval) and whether another certificate may
replace the first; a disabled CA or a CRL'd serial admits nothing; only admins manage CAs."""

from __future__ import annotations

from datetime import UTC, datetime
from hashlib import sha256

import pytest
from cryptography import x509

from lineside.domain.errors import (
    AlreadyExists,
    CertificateRefused,
    Conflict,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
)
from lineside.domain.events import EventType
from lineside.domain.factory_pki import registered_device_id
from lineside.domain.lifecycle import DeviceState
from lineside.domain.models import RegistrationIdentity, RegistrationPolicy, Scope
from lineside.services import authorities, devices, products
from lineside.services.quotas import set_device_quota
from lineside.services.registration import (
    Presented,
    Registration,
    approve_device,
    register_device,
    register_devices,
)
from tests.services.conftest import Maker, World
from tests.support.pki import Maker as Pki
from tests.support.pki import der, new_key, new_maker, pem


@pytest.fixture
def pki(world: World) -> Pki:
    """A maker's PKI made now; the world's clock moved to now, where its certificates are valid."""
    world.clock.now = datetime.now(UTC)
    return new_maker()


def proven_product(maker: Maker, pki: Pki, policy: RegistrationPolicy = RegistrationPolicy.OPEN) -> str:
    product = products.create_product(maker.services, maker.admin, name="Sensor", fields=[])
    made = authorities.register_authority(maker.services, maker.admin, product.id, pem(pki.intermediate))
    authorities.verify_authority(maker.services, maker.admin, made.authority.id, pki.proof(made.challenge))
    if policy is not RegistrationPolicy.OPEN:
        authorities.set_registration(
            maker.services,
            maker.admin,
            product.id,
            policy=policy,
            identity=RegistrationIdentity.COMMON_NAME,
            reregistration=False,
        )
    return product.id


def device_of(pki: Pki, name: str) -> bytes:
    certificate, _key = pki.device(name)
    return der(certificate)


def test_a_device_registers_once_with_an_id_it_can_compute(world: World, maker: Maker, pki: Pki) -> None:
    product_id = proven_product(maker, pki)
    certificate = device_of(pki, "SN-1")
    first = register_device(maker.services, certificate, via="test")
    again = register_device(maker.services, certificate, via="test")
    assert first.created and not again.created
    assert first.device.id == again.device.id == registered_device_id(product_id, "SN-1")
    assert first.device.state is DeviceState.DEFINED
    registered = [e for e in world.database.tables.events if e.type == EventType.DEVICE_REGISTERED]
    assert [e.subject_id for e in registered] == [first.device.id]


def test_a_ca_trusts_nothing_until_proven_and_only_once(maker: Maker, pki: Pki) -> None:
    product = products.create_product(maker.services, maker.admin, name="Lamp", fields=[])
    made = authorities.register_authority(maker.services, maker.admin, product.id, pem(pki.intermediate))
    with pytest.raises(CertificateRefused, match="not verified"):
        register_device(maker.services, device_of(pki, "SN-1"), via="test")
    with pytest.raises(CertificateRefused, match="not signed by this CA"):
        authorities.verify_authority(
            maker.services, maker.admin, made.authority.id, pki.proof(made.challenge, key=new_key())
        )
    with pytest.raises(CertificateRefused, match="challenge"):
        authorities.verify_authority(maker.services, maker.admin, made.authority.id, pki.proof("lsv_other"))
    authorities.verify_authority(maker.services, maker.admin, made.authority.id, pki.proof(made.challenge))
    with pytest.raises(Conflict):
        authorities.verify_authority(
            maker.services, maker.admin, made.authority.id, pki.proof(made.challenge)
        )
    with pytest.raises(AlreadyExists):
        authorities.register_authority(maker.services, maker.admin, product.id, pem(pki.intermediate))


def test_allow_list_admits_only_defined_serials_and_approval_holds_new_ones(maker: Maker, pki: Pki) -> None:
    product_id = proven_product(maker, pki, RegistrationPolicy.ALLOW_LIST)
    listed = devices.define_device(
        maker.services, maker.admin, product_id=product_id, serial_number="SN-LISTED"
    )
    with pytest.raises(CertificateRefused, match="allow-list"):
        register_device(maker.services, device_of(pki, "SN-OTHER"), via="test")
    assert register_device(maker.services, device_of(pki, "SN-LISTED"), via="test").device.id == listed.id

    authorities.set_registration(
        maker.services,
        maker.admin,
        product_id,
        policy=RegistrationPolicy.APPROVAL,
        identity=RegistrationIdentity.COMMON_NAME,
        reregistration=False,
    )
    held = register_device(maker.services, device_of(pki, "SN-NEW"), via="test").device
    assert held.state is DeviceState.PENDING_APPROVAL
    assert approve_device(maker.services, maker.admin, held.id).state is DeviceState.DEFINED
    with pytest.raises(Conflict):
        approve_device(maker.services, maker.admin, held.id)


def test_another_certificate_needs_reregistration(maker: Maker, pki: Pki) -> None:
    product_id = proven_product(maker, pki)
    register_device(maker.services, device_of(pki, "SN-1"), via="test")
    with pytest.raises(CertificateRefused, match="another certificate"):
        register_device(maker.services, device_of(pki, "SN-1"), via="test")
    authorities.set_registration(
        maker.services,
        maker.admin,
        product_id,
        policy=RegistrationPolicy.OPEN,
        identity=RegistrationIdentity.COMMON_NAME,
        reregistration=True,
    )
    assert not register_device(maker.services, device_of(pki, "SN-1"), via="test").created


def test_a_disabled_ca_or_a_listed_serial_admits_nothing(maker: Maker, pki: Pki) -> None:
    product_id = proven_product(maker, pki)
    (authority,) = authorities.list_authorities(maker.services, maker.admin, product_id)
    authorities.disable_authority(maker.services, maker.admin, authority.id)
    with pytest.raises(CertificateRefused, match="disabled"):
        register_device(maker.services, device_of(pki, "SN-1"), via="test")
    authorities.enable_authority(maker.services, maker.admin, authority.id)
    listed, _key = pki.device("SN-2")
    loaded = authorities.load_revocation_list(maker.services, maker.admin, authority.id, pki.crl(listed))
    assert loaded.serials == 1
    with pytest.raises(CertificateRefused, match="revocation list"):
        register_device(maker.services, der(listed), via="test")


def test_only_admins_of_the_maker_manage_its_cas(maker: Maker, rival: Maker, pki: Pki) -> None:
    product_id = proven_product(maker, pki)
    (authority,) = authorities.list_authorities(maker.services, maker.admin, product_id)
    with pytest.raises(NotFound):
        authorities.disable_authority(rival.services, rival.admin, authority.id)
    with pytest.raises(NotFound):
        authorities.list_authorities(rival.services, rival.admin, product_id)
    with pytest.raises(PermissionDenied):
        authorities.disable_authority(maker.services, maker.key(Scope.FACTORY), authority.id)
    assert isinstance(pki.root, x509.Certificate)


def test_a_storm_of_first_connections_registers_together_and_a_bad_one_alone_is_refused(
    world: World, maker: Maker, pki: Pki
) -> None:
    product_id = proven_product(maker, pki)
    good = [Presented(device_of(pki, f"SN-{n}")) for n in range(3)]
    stranger = Presented(device_of(new_maker(), "SN-X"))
    listed, _key = pki.device("SN-CRL")
    (authority,) = authorities.list_authorities(maker.services, maker.admin, product_id)
    authorities.load_revocation_list(maker.services, maker.admin, authority.id, pki.crl(listed))

    outcomes = register_devices(maker.services, [*good, stranger, Presented(der(listed))], via="test")

    assert [type(o).__name__ for o in outcomes] == ["Registration"] * 3 + ["CertificateRefused"] * 2
    assert {o.device.serial_number for o in outcomes[:3] if isinstance(o, Registration)} == {
        "SN-0",
        "SN-1",
        "SN-2",
    }
    refused = [e for e in world.database.tables.events if e.type == EventType.DEVICE_REGISTRATION_REFUSED]
    assert len(refused) == 1  # the CRL'd one: a stranger's CA names no organization to tell


def batch_of(pki: Pki, *names: str) -> list[Presented]:
    return [Presented(device_of(pki, name)) for name in names]


def test_a_batch_decides_each_certificate_as_if_it_came_alone(world: World, maker: Maker, pki: Pki) -> None:
    """New names register together; a name the batch makes twice, a serial defined before and
    a CRL'd serial are each decided one at a time, after them."""
    product_id = proven_product(maker, pki)
    known = devices.define_device(
        maker.services, maker.admin, product_id=product_id, serial_number="SN-KNOWN"
    )
    listed, _key = pki.device("SN-CRL")
    (authority,) = authorities.list_authorities(maker.services, maker.admin, product_id)
    authorities.load_revocation_list(maker.services, maker.admin, authority.id, pki.crl(listed))
    batch = [
        *batch_of(pki, "SN-TWICE", "SN-NEW", "SN-KNOWN"),
        Presented(der(listed)),
        *batch_of(pki, "SN-TWICE"),
    ]

    twice, new, defined, revoked, again = register_devices(maker.services, batch, via="test")

    assert isinstance(twice, Registration) and twice.created
    assert isinstance(new, Registration) and new.created
    assert isinstance(defined, Registration) and not defined.created and defined.device.id == known.id
    assert isinstance(revoked, CertificateRefused) and "revocation list" in revoked.detail
    assert isinstance(again, CertificateRefused) and "another certificate" in again.detail
    events = [(e.type, e.subject_id) for e in world.database.tables.events if e.actor == "factory_pki"]
    assert [subject for kind, subject in events if kind == EventType.DEVICE_DEFINED] == [
        twice.device.id,
        new.device.id,
    ]
    for device in (twice.device, new.device):  # each defined, then registered
        assert events.index((EventType.DEVICE_DEFINED, device.id)) < events.index(
            (EventType.DEVICE_REGISTERED, device.id)
        )
    assert sum(1 for d in world.database.tables.devices.values() if d.device.product_id == product_id) == 3
    assert not any(d.device.serial_number == "SN-CRL" for d in world.database.tables.devices.values())


def test_a_name_twice_in_a_batch_is_made_once_and_may_then_re_register(maker: Maker, pki: Pki) -> None:
    product_id = proven_product(maker, pki)
    authorities.set_registration(
        maker.services,
        maker.admin,
        product_id,
        policy=RegistrationPolicy.APPROVAL,
        identity=RegistrationIdentity.COMMON_NAME,
        reregistration=True,
    )

    batch = batch_of(pki, "SN-1", "SN-1")

    first, second = register_devices(maker.services, batch, via="test")

    assert isinstance(first, Registration) and first.created
    assert isinstance(second, Registration) and not second.created
    assert first.device.id == second.device.id
    assert first.device.state is DeviceState.PENDING_APPROVAL  # the product's policy, in a batch too
    with maker.services.unit_of_work(write=False) as uow:
        held = uow.certificates.list_for_device(first.device.id)
    active = {c.fingerprint_sha256: c.revoked_at is None for c in held}
    assert active == {
        sha256(batch[0].certificate).hexdigest(): False,
        sha256(batch[1].certificate).hexdigest(): True,
    }


def test_a_batch_past_the_quota_refuses_only_what_does_not_fit(maker: Maker, pki: Pki) -> None:
    proven_product(maker, pki)
    set_device_quota(maker.services, maker.admin.organization.id, 2)

    outcomes = register_devices(maker.services, batch_of(pki, "SN-1", "SN-2", "SN-3"), via="test")

    assert [type(outcome) for outcome in outcomes] == [Registration, Registration, QuotaExceeded]
    with pytest.raises(QuotaExceeded):
        register_device(maker.services, device_of(pki, "SN-4"), via="test")
