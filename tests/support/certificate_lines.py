"""A maker's line for tests of certificate clients: a product of an organization with the
maker's intermediate registered and verified as its CA, device certificates signed on it
(their keys kept), and what an operator does to the CA (disable, enable, delete, a CRL)."""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography import x509

from lineside.domain.factory_pki import registered_device_id
from lineside.services.registration import register_device
from tests.support.api import Tenant, unique
from tests.support.broker_hooks import Hooks
from tests.support.pki import API, Key, Maker, der, new_maker, pem


@dataclass
class Line:
    """A maker's verified line CA for a product of ``tenant``."""

    hooks: Hooks
    tenant: Tenant
    product_id: str
    authority_id: str
    maker: Maker
    keys: dict[int, Key] = field(default_factory=dict)  # by certificate serial number

    def certificate(self, name: str | None = None) -> tuple[x509.Certificate, str]:
        """A device certificate signed on the line, and the device id it registers as."""
        name = name or unique("SN")
        certificate, key = self.maker.device(name)
        self.keys[certificate.serial_number] = key
        return certificate, registered_device_id(self.product_id, name)

    def registered(self, name: str | None = None) -> tuple[x509.Certificate, str]:
        """A device certificate whose device registered already (its first connection)."""
        certificate, device_id = self.certificate(name)
        registration = register_device(self.hooks.application.services, der(certificate), via="test")
        assert registration.device.id == device_id
        return certificate, device_id

    def disable(self) -> None:
        answer = self.tenant.post(f"{API}/certificate-authorities/{self.authority_id}/disable")
        assert answer.status_code == 200, answer.text

    def enable(self) -> None:
        answer = self.tenant.post(f"{API}/certificate-authorities/{self.authority_id}/enable")
        assert answer.status_code == 200, answer.text

    def delete(self) -> None:
        answer = self.tenant.delete(f"{API}/certificate-authorities/{self.authority_id}")
        assert answer.status_code == 204, answer.text

    def revoke(self, certificate: x509.Certificate) -> None:
        body = {"crl": self.maker.crl(certificate)}
        answer = self.tenant.put(f"{API}/certificate-authorities/{self.authority_id}/crl", json=body)
        assert answer.status_code == 200 and answer.json()["certificates_revoked"] == 1, answer.text


def new_line(hooks: Hooks, tenant: Tenant | None = None) -> Line:
    tenant = tenant or hooks.tenant()
    maker = new_maker()
    product_id = tenant.product()["id"]
    made = tenant.created(
        f"{API}/products/{product_id}/certificate-authorities", {"certificate": pem(maker.intermediate)}
    )
    proof = {"verification_certificate": maker.proof(made["challenge"])}
    verified = tenant.post(f"{API}/certificate-authorities/{made['id']}/verify", json=proof)
    assert verified.status_code == 200, verified.text
    return Line(hooks, tenant, product_id, made["id"], maker)
