"""Reading the certificate name a production broker passes (a CN, or a DN as OpenSSL,
cryptography and RabbitMQ print one) and the certificate it passes (PEM or base64 DER)."""

from __future__ import annotations

import base64

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from lineside.entrypoints.api.routes.broker_hooks.common import certificate_bytes
from lineside.services.broker_certificates import common_name


@pytest.mark.parametrize(
    ("name", "cn"),
    [
        ("CN=SN-1,O=Maker", "SN-1"),
        ("O=Maker,CN=SN-1", "SN-1"),  # OpenSSL's default order
        ("2.5.4.5=SN-9,CN=0b9e,O=Lineside", "0b9e"),  # cryptography, unknown types as OIDs
        ("serialNumber=SN-9, CN=0b9e, O=Lineside", "0b9e"),  # spaces after the commas
        ("commonName=x", "x"),
        ("OID.2.5.4.3=x", "x"),
        ("CN=a+OU=b,O=c", "a"),  # a multi-valued RDN
        ("CN=caf\\C3\\A9", "café"),  # hex escapes are UTF-8
        ("CN=a\\,b\\+c\\=d", "a,b+c=d"),
        ("CN=first,CN=second", "first"),
    ],
)
def test_the_cn_of_a_distinguished_name(name: str, cn: str) -> None:
    assert common_name(name) == cn


@pytest.mark.parametrize(
    "name", ["SN-1", "", "A=B,C", "O=Maker", "CN=\\", "CN=\\ff", "=x", "C\\N=x", ",CN=x"]
)
def test_what_is_no_dn_with_a_cn_has_none(name: str) -> None:
    assert common_name(name) is None


@pytest.mark.parametrize("cn", ["A=B,C+D", " lead", "#hash", "trail ", 'q"uote', "back\\slash", "<>;", "ünï"])
def test_every_cn_survives_cryptographys_rfc4514_form(cn: str) -> None:
    name = x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Maker"), x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    )

    assert common_name(name.rfc4514_string()) == cn


def test_a_certificate_arrives_as_pem_or_base64_der() -> None:
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"

    assert certificate_bytes(pem) == pem.encode()
    assert certificate_bytes(base64.b64encode(b"\x30\x82der").decode()) == b"\x30\x82der"
    assert [certificate_bytes(v) for v in (None, "", "${cert_pem}", "not base64!", "====")] == [None] * 5
