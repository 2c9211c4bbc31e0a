from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from lineside.adapters.x509_ca import FileCertificateAuthority, InvalidCsr, IssuedCertificate
from lineside.services.ports import RevokedSerial

ExtensionT = TypeVar("ExtensionT", bound=x509.ExtensionType)

PRODUCT = "prod-1"
PRODUCT_NAME = "Widget"


def make_csr_pem(key: CertificateIssuerPrivateKeyTypes, common_name: str = "asked-for") -> str:
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .sign(key, algorithm)
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def ec_csr_pem(common_name: str = "asked-for") -> str:
    return make_csr_pem(ec.generate_private_key(ec.SECP256R1()), common_name)


def load_cert(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


def ca_cert(authority: FileCertificateAuthority, product_id: str = PRODUCT) -> x509.Certificate:
    return load_cert(authority.ca_certificate_pem(product_id, PRODUCT_NAME))


def sign(authority: FileCertificateAuthority, csr_pem: str, device_id: str = "dev-1") -> IssuedCertificate:
    return authority.sign_csr(PRODUCT, PRODUCT_NAME, csr_pem, device_id=device_id, serial_number="SN-0001")


def extension(cert: x509.Certificate, kind: type[ExtensionT]) -> x509.Extension[ExtensionT]:
    return cert.extensions.get_extension_for_class(kind)


# -- the product CA ---------------------------------------------------------------


def test_the_product_ca_is_created_on_first_use_and_then_reused(tmp_path: Path) -> None:
    authority = FileCertificateAuthority(tmp_path)

    first = authority.ca_certificate_pem(PRODUCT, PRODUCT_NAME)
    second = authority.ca_certificate_pem(PRODUCT, PRODUCT_NAME)

    assert first == second
    assert (tmp_path / PRODUCT / "ca.cert.pem").read_text() == first
    assert (tmp_path / PRODUCT / "ca.key.pem").exists()


def test_a_new_authority_on_the_same_directory_reuses_the_stored_ca(tmp_path: Path) -> None:
    first = FileCertificateAuthority(tmp_path).ca_certificate_pem(PRODUCT, PRODUCT_NAME)

    second = FileCertificateAuthority(tmp_path).ca_certificate_pem(PRODUCT, PRODUCT_NAME)

    assert first == second


def test_a_certificate_issued_by_a_new_authority_verifies_against_the_stored_ca(
    tmp_path: Path,
) -> None:
    original = ca_cert(FileCertificateAuthority(tmp_path))

    issued = sign(FileCertificateAuthority(tmp_path), ec_csr_pem())

    load_cert(issued.certificate_pem).verify_directly_issued_by(original)


def test_the_ca_key_file_is_readable_only_by_its_owner(tmp_path: Path) -> None:
    FileCertificateAuthority(tmp_path).ca_certificate_pem(PRODUCT, PRODUCT_NAME)

    assert stat.S_IMODE((tmp_path / PRODUCT / "ca.key.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / PRODUCT).stat().st_mode) == 0o700


def test_the_ca_key_is_an_unencrypted_pkcs8_p256_key_matching_the_ca_certificate(
    tmp_path: Path,
) -> None:
    cert = ca_cert(FileCertificateAuthority(tmp_path))
    key_pem = (tmp_path / PRODUCT / "ca.key.pem").read_bytes()

    key = serialization.load_pem_private_key(key_pem, password=None)

    assert key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert isinstance(key.curve, ec.SECP256R1)
    assert key.public_key() == cert.public_key()


def test_the_ca_is_a_self_signed_leaf_only_ca_named_after_the_product(tmp_path: Path) -> None:
    cert = ca_cert(FileCertificateAuthority(tmp_path))

    cert.verify_directly_issued_by(cert)
    constraints = extension(cert, x509.BasicConstraints)
    usage = extension(cert, x509.KeyUsage)
    assert constraints.critical and constraints.value.ca
    assert constraints.value.path_length == 0
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    assert extension(cert, x509.SubjectKeyIdentifier).value.digest
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)
    common_name = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert common_name == "Lineside device CA Widget"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Lineside"
    assert PRODUCT in cert.subject.rfc4514_string()


def test_a_very_long_product_name_still_yields_a_valid_ca(tmp_path: Path) -> None:
    authority = FileCertificateAuthority(tmp_path)

    pem = authority.ca_certificate_pem(PRODUCT, "W" * 200)

    common_name = load_cert(pem).subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert isinstance(common_name, str)
    assert common_name.startswith("Lineside device CA W")
    assert len(common_name) <= 64


def test_two_products_get_different_cas(tmp_path: Path) -> None:
    authority = FileCertificateAuthority(tmp_path)

    first = ca_cert(authority, "prod-a")
    second = ca_cert(authority, "prod-b")

    assert first.subject != second.subject
    assert first.public_key() != second.public_key()
    issued = authority.sign_csr("prod-a", PRODUCT_NAME, ec_csr_pem(), device_id="dev-1", serial_number="SN-1")
    with pytest.raises((ValueError, InvalidSignature)):
        load_cert(issued.certificate_pem).verify_directly_issued_by(second)


def test_two_products_with_the_same_name_still_get_distinct_ca_subjects(tmp_path: Path) -> None:
    authority = FileCertificateAuthority(tmp_path)

    first = load_cert(authority.ca_certificate_pem("prod-a", "Same"))
    second = load_cert(authority.ca_certificate_pem("prod-b", "Same"))

    assert first.subject != second.subject


@pytest.mark.parametrize("product_id", ["../x", "", "a/b", ".", "..", "x y", "prod_1", "é"])
def test_an_unsafe_product_id_is_refused_before_touching_the_disk(tmp_path: Path, product_id: str) -> None:
    authority = FileCertificateAuthority(tmp_path / "ca")

    with pytest.raises(ValueError, match="product_id"):
        authority.ca_certificate_pem(product_id, PRODUCT_NAME)

    assert not (tmp_path / "ca").exists()
    assert not (tmp_path / "x").exists()


def test_eight_threads_sharing_an_authority_create_a_single_ca(tmp_path: Path) -> None:
    authority = FileCertificateAuthority(tmp_path)
    barrier = threading.Barrier(8)

    def create(_: int) -> str:
        barrier.wait()
        return authority.ca_certificate_pem(PRODUCT, PRODUCT_NAME)

    with ThreadPoolExecutor(max_workers=8) as pool:
        pems = set(pool.map(create, range(8)))

    assert pems == {(tmp_path / PRODUCT / "ca.cert.pem").read_text()}


def test_eight_threads_with_their_own_authorities_create_a_single_ca(tmp_path: Path) -> None:
    authorities = [FileCertificateAuthority(tmp_path) for _ in range(8)]
    barrier = threading.Barrier(8)

    def create(authority: FileCertificateAuthority) -> str:
        barrier.wait()
        return authority.ca_certificate_pem(PRODUCT, PRODUCT_NAME)

    with ThreadPoolExecutor(max_workers=8) as pool:
        pems = set(pool.map(create, authorities))

    assert pems == {(tmp_path / PRODUCT / "ca.cert.pem").read_text()}
    assert sorted(p.name for p in tmp_path.iterdir()) == [PRODUCT]


def test_a_process_that_loses_the_creation_race_adopts_the_winners_ca(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    winner = FileCertificateAuthority(tmp_path)
    real_rename: Callable[..., None] = os.rename
    published: list[str] = []

    def winner_publishes_first(source: Path, destination: Path) -> None:
        monkeypatch.setattr(os, "rename", real_rename)
        published.append(winner.ca_certificate_pem(PRODUCT, PRODUCT_NAME))
        real_rename(source, destination)

    monkeypatch.setattr(os, "rename", winner_publishes_first)

    adopted = FileCertificateAuthority(tmp_path).ca_certificate_pem(PRODUCT, PRODUCT_NAME)

    assert published == [adopted]
    assert (tmp_path / PRODUCT / "ca.cert.pem").read_text() == adopted
    assert sorted(p.name for p in tmp_path.iterdir()) == [PRODUCT]


# -- device certificates from a CSR ---------------------------------------------------


def test_a_certificate_signed_from_a_csr_verifies_against_the_product_ca(tmp_path: Path) -> None:
    authority = FileCertificateAuthority(tmp_path)

    issued = sign(authority, ec_csr_pem())

    cert = load_cert(issued.certificate_pem)
    cert.verify_directly_issued_by(ca_cert(authority))
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)


def test_the_certificate_carries_the_csrs_public_key(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())

    issued = sign(FileCertificateAuthority(tmp_path), make_csr_pem(key))

    assert load_cert(issued.certificate_pem).public_key() == key.public_key()


def test_the_ca_names_the_device_and_ignores_the_subject_the_csr_asked_for(
    tmp_path: Path,
) -> None:
    authority = FileCertificateAuthority(tmp_path)

    issued = authority.sign_csr(
        PRODUCT, PRODUCT_NAME, ec_csr_pem("evil"), device_id="dev-42", serial_number="SN 0042"
    )

    cert = load_cert(issued.certificate_pem)
    subject = cert.subject
    assert subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "dev-42"
    assert subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value == "SN 0042"
    assert subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Lineside"
    assert "evil" not in subject.rfc4514_string()
    assert issued.subject == subject.rfc4514_string()
    assert cert.issuer == ca_cert(authority).subject
    san = extension(cert, x509.SubjectAlternativeName).value
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    assert uris == ["urn:lineside:device:dev-42"]


def test_a_device_certificate_is_a_client_authentication_leaf(tmp_path: Path) -> None:
    authority = FileCertificateAuthority(tmp_path)

    cert = load_cert(sign(authority, ec_csr_pem()).certificate_pem)

    constraints = extension(cert, x509.BasicConstraints)
    usage = extension(cert, x509.KeyUsage)
    assert constraints.critical and not constraints.value.ca
    assert usage.critical and usage.value.digital_signature and usage.value.key_agreement
    assert not usage.value.key_cert_sign
    eku = extension(cert, x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    ca_ski = extension(ca_cert(authority), x509.SubjectKeyIdentifier).value
    assert extension(cert, x509.AuthorityKeyIdentifier).value.key_identifier == ca_ski.digest
    ski = extension(cert, x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(cert.public_key())


def test_the_issued_certificate_summary_describes_the_certificate(tmp_path: Path) -> None:
    issued = sign(FileCertificateAuthority(tmp_path), ec_csr_pem())

    cert = load_cert(issued.certificate_pem)
    assert issued.serial_hex == format(cert.serial_number, "x")
    assert issued.fingerprint_sha256 == cert.fingerprint(hashes.SHA256()).hex()
    assert issued.fingerprint_sha256 == issued.fingerprint_sha256.lower()
    assert issued.not_before == cert.not_valid_before_utc
    assert issued.not_after == cert.not_valid_after_utc
    assert issued.not_before.utcoffset() == timedelta(0)
    assert issued.private_key_pem is None


def test_a_device_certificate_is_backdated_five_minutes_and_lasts_certificate_days(
    tmp_path: Path,
) -> None:
    before = datetime.now(UTC).replace(microsecond=0)

    issued = sign(FileCertificateAuthority(tmp_path, certificate_days=30), ec_csr_pem())

    assert before - timedelta(minutes=5) <= issued.not_before <= datetime.now(UTC)
    assert issued.not_after - issued.not_before == timedelta(days=30, minutes=5)


def test_a_device_certificate_never_outlives_its_ca(tmp_path: Path) -> None:
    authority = FileCertificateAuthority(tmp_path, certificate_days=400, ca_days=100)

    issued = sign(authority, ec_csr_pem())

    assert issued.not_after == ca_cert(authority).not_valid_after_utc


def test_serial_numbers_are_large_and_never_repeat(tmp_path: Path) -> None:
    authority = FileCertificateAuthority(tmp_path)

    serials = [load_cert(sign(authority, ec_csr_pem()).certificate_pem).serial_number for _ in range(8)]

    assert len(set(serials)) == len(serials)
    assert all(serial > 0 and serial.bit_length() > 64 - 8 for serial in serials)


@pytest.mark.parametrize(
    "key_factory",
    [
        lambda: ec.generate_private_key(ec.SECP384R1()),
        lambda: ec.generate_private_key(ec.SECP521R1()),
        lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
    ],
    ids=["p384", "p521", "rsa2048"],
)
def test_csrs_with_other_strong_keys_are_accepted(
    tmp_path: Path, key_factory: Callable[[], CertificateIssuerPrivateKeyTypes]
) -> None:
    authority = FileCertificateAuthority(tmp_path)

    issued = sign(authority, make_csr_pem(key_factory()))

    load_cert(issued.certificate_pem).verify_directly_issued_by(ca_cert(authority))


def test_an_rsa_device_certificate_does_not_claim_key_agreement(tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    cert = load_cert(sign(FileCertificateAuthority(tmp_path), make_csr_pem(key)).certificate_pem)

    usage = extension(cert, x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_agreement


def _certificate_pem_instead_of_a_csr() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not a csr")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@pytest.mark.parametrize(
    ("csr_factory", "message"),
    [
        (lambda: "this is not a csr", "parse"),
        (lambda: "", "parse"),
        (_certificate_pem_instead_of_a_csr, "parse"),
        (
            lambda: make_csr_pem(rsa.generate_private_key(public_exponent=65537, key_size=1024)),
            "too weak",
        ),
        (lambda: make_csr_pem(ec.generate_private_key(ec.SECP256K1())), "not accepted"),
        (lambda: make_csr_pem(ed25519.Ed25519PrivateKey.generate()), "not accepted"),
    ],
    ids=["garbage", "empty", "certificate", "rsa1024", "secp256k1", "ed25519"],
)
def test_a_bad_csr_is_refused_with_a_readable_message(
    tmp_path: Path, csr_factory: Callable[[], str], message: str
) -> None:
    authority = FileCertificateAuthority(tmp_path)

    with pytest.raises(InvalidCsr, match=message):
        sign(authority, csr_factory())


def test_a_csr_whose_signed_content_was_tampered_with_is_refused(tmp_path: Path) -> None:
    der = x509.load_pem_x509_csr(ec_csr_pem("device-a").encode()).public_bytes(serialization.Encoding.DER)
    tampered = x509.load_der_x509_csr(der.replace(b"device-a", b"device-b"))
    assert not tampered.is_signature_valid
    tampered_pem = tampered.public_bytes(serialization.Encoding.PEM).decode()

    with pytest.raises(InvalidCsr, match="signature"):
        sign(FileCertificateAuthority(tmp_path), tampered_pem)


def test_an_invalid_csr_is_a_value_error() -> None:
    assert issubclass(InvalidCsr, ValueError)


@pytest.mark.parametrize(
    ("device_id", "serial_number"),
    [("", "SN-1"), ("dev 1", "SN-1"), ("d" * 65, "SN-1")],
)
def test_a_device_id_that_cannot_be_encoded_is_refused(
    tmp_path: Path, device_id: str, serial_number: str
) -> None:
    authority = FileCertificateAuthority(tmp_path)

    with pytest.raises(ValueError, match=r"device_id"):
        authority.sign_csr(
            PRODUCT, PRODUCT_NAME, ec_csr_pem(), device_id=device_id, serial_number=serial_number
        )


@pytest.mark.parametrize("serial_number", ["SN_1", "", "s" * 65])
def test_a_serial_number_that_is_no_printable_string_is_left_out_of_the_subject(
    tmp_path: Path, serial_number: str
) -> None:
    issued = FileCertificateAuthority(tmp_path).sign_csr(
        PRODUCT, PRODUCT_NAME, ec_csr_pem(), device_id="dev-1", serial_number=serial_number
    )

    subject = load_cert(issued.certificate_pem).subject
    assert subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER) == []
    assert subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "dev-1"


# -- device certificates with a server generated key ----------------------------------


def test_the_private_key_from_issue_with_new_key_matches_the_certificate(tmp_path: Path) -> None:
    authority = FileCertificateAuthority(tmp_path)

    issued = authority.issue_with_new_key(PRODUCT, PRODUCT_NAME, device_id="dev-7", serial_number="SN-7")

    assert issued.private_key_pem is not None
    assert issued.private_key_pem.startswith("-----BEGIN PRIVATE KEY-----")
    key = serialization.load_pem_private_key(issued.private_key_pem.encode(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert isinstance(key.curve, ec.SECP256R1)
    cert = load_cert(issued.certificate_pem)
    assert key.public_key() == cert.public_key()
    cert.verify_directly_issued_by(ca_cert(authority))
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "dev-7"


# -- revocation lists -----------------------------------------------------------------------


def test_the_crl_lists_revoked_serials_and_verifies_against_the_ca(tmp_path: Path) -> None:
    authority = FileCertificateAuthority(tmp_path)
    first, second = (sign(authority, ec_csr_pem()) for _ in range(2))
    revoked_at = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
    revoked = [RevokedSerial(first.serial_hex, revoked_at)]

    crl = x509.load_pem_x509_crl(authority.crl_pem(PRODUCT, PRODUCT_NAME, revoked).encode())

    ca = ca_cert(authority)
    ca_key = ca.public_key()
    assert isinstance(ca_key, ec.EllipticCurvePublicKey)
    assert crl.is_signature_valid(ca_key)
    assert crl.issuer == ca.subject
    entry = crl.get_revoked_certificate_by_serial_number(int(first.serial_hex, 16))
    assert entry is not None
    assert entry.revocation_date_utc == revoked_at
    assert crl.get_revoked_certificate_by_serial_number(int(second.serial_hex, 16)) is None
    assert len(crl) == 1


def test_the_crl_is_fresh_for_one_day_and_carries_its_number_and_issuer_key(
    tmp_path: Path,
) -> None:
    authority = FileCertificateAuthority(tmp_path)

    crl = x509.load_pem_x509_crl(authority.crl_pem(PRODUCT, PRODUCT_NAME, []).encode())

    assert crl.next_update_utc is not None
    assert crl.next_update_utc - crl.last_update_utc == timedelta(days=1)
    assert abs(crl.last_update_utc - datetime.now(UTC)) < timedelta(minutes=1)
    assert isinstance(crl.signature_hash_algorithm, hashes.SHA256)
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number > 0
    aki = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ca_ski = extension(ca_cert(authority), x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ca_ski.digest
    assert len(crl) == 0


def test_a_crl_with_many_entries_lists_each_serial_once(tmp_path: Path) -> None:
    authority = FileCertificateAuthority(tmp_path)
    when = datetime(2024, 1, 1, tzinfo=UTC)
    revoked = [RevokedSerial(serial, when) for serial in ["0a", "0b", "a", "ff" * 19]]

    crl = x509.load_pem_x509_crl(authority.crl_pem(PRODUCT, PRODUCT_NAME, revoked).encode())

    assert sorted(entry.serial_number for entry in crl) == [10, 11, int("ff" * 19, 16)]


def test_a_crl_entry_with_a_non_hex_serial_is_refused(tmp_path: Path) -> None:
    authority = FileCertificateAuthority(tmp_path)
    revoked = [RevokedSerial("not-hex", datetime(2024, 1, 1, tzinfo=UTC))]

    with pytest.raises(ValueError, match="serial_hex"):
        authority.crl_pem(PRODUCT, PRODUCT_NAME, revoked)


def test_certificates_and_crls_take_their_times_from_the_injected_clock(tmp_path: Path) -> None:
    then = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)
    authority = FileCertificateAuthority(tmp_path, clock=lambda: then)
    issued = load_cert(sign(authority, ec_csr_pem()).certificate_pem)
    crl = x509.load_pem_x509_crl(authority.crl_pem(PRODUCT, PRODUCT_NAME, []).encode())

    assert then - timedelta(days=2) < ca_cert(authority).not_valid_before_utc <= then
    assert then - timedelta(days=2) < issued.not_valid_before_utc <= then
    assert crl.last_update_utc == then
