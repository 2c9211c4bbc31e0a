"""Keys of offline factory stations: the Ed25519 key a station signs its ledger with, and
the CA it signs device certificates with on the line (domain.stations).

The station CA is a CA of its own, not one under the product's device CA: product CAs are
made with a path length of 0 (they sign devices only), and every device they signed would
have to be re-issued to give them room for a station below. The server registers the
station CA for the product as a verified CA (it made the key, so possession is proven), which
is what lets its devices register themselves on first connection; revoking the station
closes it to new registrations.
"""

from __future__ import annotations

import base64
import binascii
import functools
import threading
from collections.abc import Sequence
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from lineside.services.ports import StationCredentials

_MAX_NAME = 64


class Ed25519StationKeys:
    """Station keys with ``cryptography``: Ed25519 for ledgers, ECDSA P-256 for the CA."""

    def new_credentials(
        self, product_id: str, station_name: str, not_before: datetime, not_after: datetime
    ) -> StationCredentials:
        signing_key = ed25519.Ed25519PrivateKey.generate()
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_certificate = _station_ca(ca_key, product_id, station_name, not_before, not_after)
        return StationCredentials(
            signing_key_pem=_private_pem(signing_key),
            verify_key_pem=signing_key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode("ascii"),
            ca_key_pem=_private_pem(ca_key),
            ca_certificate_pem=ca_certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"),
        )

    def sign(self, signing_key_pem: str, digest_hex: str) -> str:
        signature = _signing_key(signing_key_pem).sign(bytes.fromhex(digest_hex)).signature
        return base64.b64encode(signature).decode("ascii")

    def check_signatures(
        self, verify_key_pem: str, signed: Sequence[tuple[str, str]]
    ) -> _ThreadedSignatureCheck:
        return _ThreadedSignatureCheck(verify_key_pem, signed)


def _holds(key: VerifyKey, digest_hex: str, signature: str) -> bool:
    try:
        key.verify(bytes.fromhex(digest_hex), base64.b64decode(signature, validate=True))
    except (BadSignatureError, ValueError, binascii.Error, TypeError):
        return False
    return True


# Below this many signatures a check is not worth a thread: done when asked, in the caller.
_THREADED_FROM = 64
_THREADS = 2


class _ThreadedSignatureCheck:
    """An upload's signatures, checked by two threads started at once, each over a slice.
    libsodium leaves the GIL while it verifies, so they run on other cores beside the sync's
    reads (which wait on the database) instead of in front of them."""

    def __init__(self, verify_key_pem: str, signed: Sequence[tuple[str, str]]) -> None:
        self._key_pem, self._signed = verify_key_pem, list(signed)
        size = -(-len(self._signed) // _THREADS)
        self._slices = [
            range(start, min(start + size, len(self._signed)))
            for start in range(0, len(self._signed), size or 1)
        ]
        self._found: list[int | None] = [None] * len(self._slices)
        self._failed: list[BaseException] = []  # a thread's unexpected error, raised by first_forged
        self._threads: list[threading.Thread] = []
        if len(self._signed) >= _THREADED_FROM:
            self._threads = [
                threading.Thread(
                    target=self._check_in_thread, args=(n,), name="station-signatures", daemon=True
                )
                for n in range(len(self._slices))
            ]
            for thread in self._threads:
                thread.start()

    def first_forged(self) -> int | None:
        if self._threads:
            for thread in self._threads:
                thread.join()
        else:
            for n in range(len(self._slices)):
                self._check(n)
        if self._failed:
            raise self._failed[0]
        return min((index for index in self._found if index is not None), default=None)

    def _check_in_thread(self, n: int) -> None:
        try:
            self._check(n)
        except BaseException as error:  # handed to the caller: never a slice left unchecked
            self._failed.append(error)

    def _check(self, n: int) -> None:
        try:
            key = _verify_key(self._key_pem)
        except (ValueError, UnsupportedAlgorithm):
            self._found[n] = self._slices[n].start  # no key: nothing is the station's
            return
        for index in self._slices[n]:
            digest_hex, signature = self._signed[index]
            if not _holds(key, digest_hex, signature):
                self._found[n] = index
                return


# A sync checks every entry of an upload against one station's key: parsed once, not per
# entry. Keys are immutable; a bad PEM raises and is not cached. Signatures are verified by
# libsodium (PyNaCl): 42 us each here against OpenSSL's 90, and it leaves the GIL as well.
@functools.lru_cache(maxsize=64)
def _verify_key(verify_key_pem: str) -> VerifyKey:
    key = serialization.load_pem_public_key(verify_key_pem.encode("ascii"))
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise ValueError("a station's verify key is Ed25519")
    return VerifyKey(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))


# A station signs every ledger entry with its one key: parsing the PEM each time was 35 us of
# the 62 an entry's signature cost. Ed25519 signatures are deterministic, so libsodium's are
# the bytes OpenSSL's were (15 us, and it leaves the GIL, as for verifying). A bad PEM raises
# and is not cached.
@functools.lru_cache(maxsize=8)
def _signing_key(signing_key_pem: str) -> SigningKey:
    key = serialization.load_pem_private_key(signing_key_pem.encode("ascii"), password=None)
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise ValueError("a station's signing key is Ed25519")
    raw = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return SigningKey(raw)


def _private_pem(key: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")


def _station_ca(
    key: ec.EllipticCurvePrivateKey,
    product_id: str,
    station_name: str,
    not_before: datetime,
    not_after: datetime,
) -> x509.Certificate:
    """Path length 0 (devices only), valid exactly for the station's window."""
    common_name = f"Lineside station {station_name.strip()}"[:_MAX_NAME].strip()
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Lineside"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, product_id),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    usage = x509.KeyUsage(
        digital_signature=False,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
