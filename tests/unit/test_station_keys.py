"""A station's ledger signatures (adapters.station_keys): an upload's are checked beside the
caller, by threads over slices once there are enough of them, and the answer is the first
entry the station's key did not sign, whichever slice it fell in."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from lineside.adapters.station_keys import Ed25519StationKeys

pytestmark = pytest.mark.unit


def _pem(key: ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


STATION = ed25519.Ed25519PrivateKey.generate()
FORGER = ed25519.Ed25519PrivateKey.generate()


def _signed(count: int, *, forged: tuple[int, ...] = ()) -> list[tuple[str, str]]:
    pairs = []
    for index in range(count):
        digest = hashlib.sha256(f"entry {index}".encode()).hexdigest()
        signer = FORGER if index in forged else STATION
        pairs.append((digest, base64.b64encode(signer.sign(bytes.fromhex(digest))).decode("ascii")))
    return pairs


def _first_forged(signed: list[tuple[str, str]], key_pem: str | None = None) -> int | None:
    check = Ed25519StationKeys().check_signatures(key_pem or _pem(STATION.public_key()), signed)
    return check.first_forged()


@pytest.mark.parametrize("count", [0, 1, 10, 63, 64, 65, 500])
def test_signatures_all_the_stations_are_believed(count: int) -> None:
    assert _first_forged(_signed(count)) is None


@pytest.mark.parametrize(
    ("count", "forged", "first"),
    [
        (10, (7,), 7),  # few: checked in the caller
        (200, (0,), 0),
        (200, (99,), 99),  # the last of the first slice
        (200, (100,), 100),  # the first of the second
        (200, (199,), 199),
        (200, (30, 170), 30),  # one in each slice: the earlier
        (201, (150, 120), 120),  # two in the second slice
    ],
)
def test_the_first_entry_signed_by_another_key_is_found(
    count: int, forged: tuple[int, ...], first: int
) -> None:
    assert _first_forged(_signed(count, forged=forged)) == first


@pytest.mark.parametrize("signature", ["", "not base64!", base64.b64encode(b"short").decode(), "AAAA" * 22])
def test_a_malformed_signature_is_forged_not_an_error(signature: str) -> None:
    signed = _signed(100)
    signed[70] = (signed[70][0], signature)
    assert _first_forged(signed) == 70


def test_a_digest_that_is_not_hex_is_forged() -> None:
    signed = _signed(100)
    signed[3] = ("zz" * 32, signed[3][1])
    assert _first_forged(signed) == 3


@pytest.mark.parametrize("count", [5, 100])
def test_a_key_that_is_not_ed25519_signed_nothing(count: int) -> None:
    p256 = _pem(ec.generate_private_key(ec.SECP256R1()).public_key())
    assert _first_forged(_signed(count), p256) == 0
    assert (
        _first_forged(_signed(count), "-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n")
        == 0
    )


def _private_pem(key: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")


def test_a_signature_is_the_one_the_stations_key_makes_and_its_verify_key_believes() -> None:
    digests = [hashlib.sha256(f"entry {n}".encode()).hexdigest() for n in range(3)]
    keys = Ed25519StationKeys()
    signed = [(digest, keys.sign(_private_pem(STATION), digest)) for digest in digests]
    # Ed25519 is deterministic: the same bytes as the key's own signature (the parsed key is
    # kept between calls, and must stay this station's).
    assert [signature for _, signature in signed] == [
        base64.b64encode(STATION.sign(bytes.fromhex(digest))).decode("ascii") for digest in digests
    ]
    assert _first_forged(signed) is None
    assert keys.sign(_private_pem(FORGER), digests[0]) != signed[0][1]


def test_a_signing_key_that_is_not_ed25519_is_refused() -> None:
    with pytest.raises(ValueError, match="Ed25519"):
        Ed25519StationKeys().sign(_private_pem(ec.generate_private_key(ec.SECP256R1())), "ab" * 32)
