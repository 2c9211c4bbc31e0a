"""Sealing: AES-256-GCM for the few secrets the server must read back.

Stored idempotent answers (which can hold a new key) and webhook signing secrets (which
the sender needs to sign) cannot be kept as one-way hashes like every other secret, so
they are sealed under a key derived from the server key. The ``context`` goes in as
associated data: a sealed value copied to another row does not open there.
"""

from __future__ import annotations

import base64
import binascii
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from lineside.domain.secret_tokens import SecretHasher

NONCE_BYTES = 12


class AesGcmSecretBox:
    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    @classmethod
    def derived(cls, hasher: SecretHasher, purpose: str) -> AesGcmSecretBox:
        """A box whose 256-bit key is the server key's HMAC of ``purpose``: one key per use."""
        return cls(bytes.fromhex(hasher.hash(f"sealing-key\x00{purpose}")))

    def seal(self, plaintext: str, context: str) -> str:
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), context.encode())
        return base64.b64encode(nonce + sealed).decode("ascii")

    def open(self, sealed: str, context: str) -> str:
        try:
            raw = base64.b64decode(sealed, validate=True)
            nonce, body = raw[:NONCE_BYTES], raw[NONCE_BYTES:]
            return self._aead.decrypt(nonce, body, context.encode()).decode()
        except (InvalidTag, binascii.Error, ValueError) as error:
            raise ValueError("The sealed value does not open with this key and context.") from error
