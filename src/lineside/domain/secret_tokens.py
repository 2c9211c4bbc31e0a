"""Secrets handed to people and devices, and the keyed hashes we keep instead of them.

Every secret has a recognisable prefix so secret scanners can find a leaked one, carries
256 bits from ``secrets``, and is stored only as HMAC-SHA-256 under the server key: a stolen
database yields no usable credential, and a lookup is one index probe on the hash.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from enum import StrEnum

SECRET_BYTES = 32


class SecretKind(StrEnum):
    """The prefix of each kind of secret."""

    API_KEY = "lsk_"
    DEVICE_TOKEN = "lsd_"
    CLAIM_CODE = "lsc_"
    USER_TOKEN = "lsu_"
    INVITATION = "lsi_"
    FACTORY_TOKEN = "lsf_"  # a factory line's enrollment token
    MQTT_PASSWORD = "lsm_"  # a device's MQTT CONNECT password
    PROVISION_SECRET = "lsp_"  # a product's MQTT provisioning secret
    TRANSFER_CODE = "lst_"  # an owner's offer to hand a device to another person
    CA_CHALLENGE = "lsv_"  # the CN a maker signs with their CA's key, to prove they hold it


# 26 base64url characters carry 156 bits: short enough for a small QR code.
CLAIM_CODE_CHARACTERS = 26


def generate_secret(kind: SecretKind) -> str:
    return kind.value + secrets.token_urlsafe(SECRET_BYTES)


def generate_secrets(kind: SecretKind, count: int) -> list[str]:
    """``count`` secrets from one read of the random source (the same as ``generate_secret``
    each, but cheaper for a batch of 100,000)."""
    raw = secrets.token_bytes(SECRET_BYTES * count)
    encode = base64.urlsafe_b64encode
    return [
        kind.value + encode(raw[start : start + SECRET_BYTES]).rstrip(b"=").decode("ascii")
        for start in range(0, SECRET_BYTES * count, SECRET_BYTES)
    ]


def display_prefix(secret: str) -> str:
    """Enough of a secret to tell keys apart in a list, far too little to guess the rest."""
    return secret[:10]


class SecretHasher:
    """Keyed hashing of secrets with the server key."""

    def __init__(self, server_key: bytes) -> None:
        if len(server_key) < 32:
            raise ValueError("The server key must be at least 32 bytes.")
        self._key = server_key
        # HMAC's inner and outer key pads, prepared once (RFC 2104): hashing a secret then
        # costs two hash copies instead of a key setup per call. Same result as hmac.new.
        block = (hashlib.sha256(server_key).digest() if len(server_key) > 64 else server_key).ljust(64, b"\0")
        self._inner = hashlib.sha256(bytes(byte ^ 0x36 for byte in block))
        self._outer = hashlib.sha256(bytes(byte ^ 0x5C for byte in block))

    def hash(self, secret: str) -> str:
        inner = self._inner.copy()
        inner.update(secret.encode())
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()

    def matches(self, secret: str, stored_hash: str) -> bool:
        return hmac.compare_digest(self.hash(secret), stored_hash)

    def claim_code(self, device_id: str, generation: int) -> str:
        """The claim code of a device, derived rather than stored (see ADR 4).

        Labels must be reprintable long after the batch was made, yet the database keeps
        only a keyed hash: so the code is a keyed function of the device and a generation
        number that a regeneration bumps. Without the server key it cannot be computed.
        """
        inner = self._inner.copy()
        inner.update(f"claim-code\x00{device_id}\x00{generation}".encode())
        outer = self._outer.copy()
        outer.update(inner.digest())
        digest = outer.digest()
        text = base64.urlsafe_b64encode(digest).decode("ascii")
        return SecretKind.CLAIM_CODE.value + text[:CLAIM_CODE_CHARACTERS]
