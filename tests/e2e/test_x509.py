"""Device certificates over a real socket: issued from a CSR or with a new key, chained to
the product CA, replaced and revoked onto the product's CRL."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import NameOID

from tests.support.api import Tenant, assert_problem


def csr_pem(key: CertificateIssuerPrivateKeyTypes, common_name: str = "chosen-by-the-device") -> str:
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .sign(key, algorithm)
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def p256() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def issue(tenant: Tenant, device_id: str, csr: str | None = None) -> dict[str, Any]:
    body = {"type": "x509"} if csr is None else {"type": "x509", "csr": csr}
    return tenant.created(f"/api/v1/devices/{device_id}/credentials", body)


def certificate_of(issued: dict[str, Any]) -> x509.Certificate:
    return x509.load_pem_x509_certificate(issued["certificate"].encode())


def product_ca(tenant: Tenant, product_id: str) -> x509.Certificate:
    response = tenant.get(f"/api/v1/products/{product_id}/ca.pem")
    assert response.status_code == 200, response.text
    return x509.load_pem_x509_certificate(response.content)


def product_crl(tenant: Tenant, product_id: str) -> x509.CertificateRevocationList:
    response = tenant.get(f"/api/v1/products/{product_id}/crl.pem")
    assert response.status_code == 200, response.text
    return x509.load_pem_x509_crl(response.content)


def common_name(certificate: x509.Certificate) -> str:
    value = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert isinstance(value, str)
    return value


def public_der(key: Any) -> bytes:
    der: bytes = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return der


def revoked_serials(crl: x509.CertificateRevocationList) -> set[int]:
    return {entry.serial_number for entry in crl}


def test_a_certificate_signed_from_a_device_csr_chains_to_the_product_ca(tenant: Tenant) -> None:
    product = tenant.product()
    device = tenant.device(product["id"], "SN-X509-1")
    key = p256()
    issued = issue(tenant, device["id"], csr_pem(key))
    certificate = certificate_of(issued)
    ca = product_ca(tenant, product["id"])

    certificate.verify_directly_issued_by(ca)
    assert common_name(certificate) == device["id"]
    assert public_der(certificate.public_key()) == public_der(key.public_key())
    assert certificate.serial_number.bit_length() > 64 - 8
    assert issued["serial"] == format(certificate.serial_number, "x")
    assert issued["private_key"] is None
    assert issued["type"] == "x509"


def test_two_certificates_never_share_a_serial(tenant: Tenant) -> None:
    product = tenant.product()
    first = certificate_of(issue(tenant, tenant.device(product["id"])["id"], csr_pem(p256())))
    second = certificate_of(issue(tenant, tenant.device(product["id"])["id"], csr_pem(p256())))
    assert first.serial_number != second.serial_number
    assert second.serial_number.bit_length() > 64 - 8


def test_a_certificate_without_a_csr_comes_with_its_private_key(tenant: Tenant) -> None:
    product = tenant.product()
    device = tenant.device(product["id"])
    issued = issue(tenant, device["id"])
    certificate = certificate_of(issued)
    key = serialization.load_pem_private_key(issued["private_key"].encode(), password=None)
    assert public_der(key.public_key()) == public_der(certificate.public_key())
    certificate.verify_directly_issued_by(product_ca(tenant, product["id"]))
    assert common_name(certificate) == device["id"]


def test_each_product_has_its_own_ca(tenant: Tenant) -> None:
    one, two = tenant.product(), tenant.product()
    certificate = certificate_of(issue(tenant, tenant.device(one["id"])["id"]))
    other_ca = product_ca(tenant, two["id"])
    assert other_ca.subject != product_ca(tenant, one["id"]).subject
    with pytest.raises(ValueError):
        certificate.verify_directly_issued_by(other_ca)


def test_a_second_certificate_puts_the_first_on_the_crl(tenant: Tenant) -> None:
    product = tenant.product()
    device = tenant.device(product["id"])
    first = certificate_of(issue(tenant, device["id"], csr_pem(p256())))
    second = certificate_of(issue(tenant, device["id"], csr_pem(p256())))

    crl = product_crl(tenant, product["id"])
    ca = product_ca(tenant, product["id"])
    assert crl.is_signature_valid(ca.public_key())  # type: ignore[arg-type]
    assert crl.issuer == ca.subject
    assert first.serial_number in revoked_serials(crl)
    assert second.serial_number not in revoked_serials(crl)

    listed = tenant.get(f"/api/v1/devices/{device['id']}/certificates").json()
    revoked_at = {c["serial"]: c["revoked_at"] for c in listed}
    assert revoked_at[format(first.serial_number, "x")] is not None
    assert revoked_at[format(second.serial_number, "x")] is None


def test_a_new_product_has_an_empty_crl_signed_by_its_ca(tenant: Tenant) -> None:
    product = tenant.product()
    crl = product_crl(tenant, product["id"])
    assert revoked_serials(crl) == set()
    assert crl.is_signature_valid(product_ca(tenant, product["id"]).public_key())  # type: ignore[arg-type]


def test_revoking_a_device_puts_its_certificate_on_the_crl_and_stops_its_token(tenant: Tenant) -> None:
    product = tenant.product()
    device = tenant.device(product["id"])
    token = tenant.token(device["id"])
    certificate = certificate_of(issue(tenant, device["id"], csr_pem(p256())))
    me = tenant.http.get("/device/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200, me.text
    assert certificate.serial_number not in revoked_serials(product_crl(tenant, product["id"]))

    revoked = tenant.post(f"/api/v1/devices/{device['id']}/revoke")
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["state"] == "revoked"

    crl = product_crl(tenant, product["id"])
    assert certificate.serial_number in revoked_serials(crl)
    assert crl.is_signature_valid(product_ca(tenant, product["id"]).public_key())  # type: ignore[arg-type]
    refused = tenant.http.get("/device/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert_problem(refused, 401)
    assert_problem(tenant.post(f"/api/v1/devices/{device['id']}/credentials", json={"type": "x509"}), 409)


def test_the_crl_lists_only_its_own_products_certificates(tenant: Tenant) -> None:
    one, two = tenant.product(), tenant.product()
    device = tenant.device(one["id"])
    first = certificate_of(issue(tenant, device["id"]))
    issue(tenant, device["id"])
    assert first.serial_number in revoked_serials(product_crl(tenant, one["id"]))
    assert revoked_serials(product_crl(tenant, two["id"])) == set()


def test_another_organization_sees_neither_the_ca_nor_the_crl(tenant: Tenant, make_tenant: Any) -> None:
    product = tenant.product()
    stranger = make_tenant()
    assert_problem(stranger.get(f"/api/v1/products/{product['id']}/ca.pem"), 404)
    assert_problem(stranger.get(f"/api/v1/products/{product['id']}/crl.pem"), 404)


def rsa_1024_csr() -> str:
    return csr_pem(rsa.generate_private_key(public_exponent=65537, key_size=1024))


def tampered_csr() -> str:
    pem = csr_pem(p256())
    der = bytearray(x509.load_pem_x509_csr(pem.encode()).public_bytes(serialization.Encoding.DER))
    der[-1] ^= 0x01  # the last byte belongs to the signature
    body = "".join(base64.encodebytes(bytes(der)).decode().split())
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return (
        "-----BEGIN CERTIFICATE REQUEST-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE REQUEST-----\n"
    )


@pytest.mark.parametrize(
    "csr",
    [
        pytest.param(lambda: "not a CSR at all", id="garbage"),
        pytest.param(
            lambda: "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
            id="garbage inside PEM armour",
        ),
        pytest.param(rsa_1024_csr, id="RSA-1024"),
        pytest.param(lambda: csr_pem(ec.generate_private_key(ec.SECP256K1())), id="secp256k1 curve"),
        pytest.param(lambda: csr_pem(ed25519.Ed25519PrivateKey.generate()), id="Ed25519"),
        pytest.param(tampered_csr, id="signature does not verify"),
    ],
)
def test_an_unusable_csr_is_refused_and_issues_nothing(tenant: Tenant, csr: Any) -> None:
    product = tenant.product()
    device = tenant.device(product["id"])
    response = tenant.post(f"/api/v1/devices/{device['id']}/credentials", json={"type": "x509", "csr": csr()})
    assert_problem(response, 422)
    assert tenant.get(f"/api/v1/devices/{device['id']}/certificates").json() == []
