"""Signatures as the Standard Webhooks specification says, checked by its own library; and
the sealing that keeps signing secrets readable only with the server key."""

from __future__ import annotations

import base64
import time

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from lineside.adapters.sealing import AesGcmSecretBox
from lineside.adapters.webhooks.signing import signature, signature_headers
from lineside.domain.secret_tokens import SecretHasher
from lineside.domain.webhooks import generate_signing_secret

BODY = b'{"data":{"event_id":"e"},"timestamp":"2025-01-01T00:00:00.000000Z","type":"device.blessed"}'


def test_a_signing_secret_is_whsec_and_the_base64_of_32_random_bytes() -> None:
    secrets = {generate_signing_secret() for _ in range(100)}
    assert len(secrets) == 100
    for secret in secrets:
        assert secret.startswith("whsec_")
        assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32


def test_the_standardwebhooks_library_verifies_our_signature() -> None:
    secret = generate_signing_secret()
    headers = signature_headers(secret, "msg_1", int(time.time()), BODY)
    assert Webhook(secret).verify(BODY, headers)["type"] == "device.blessed"


@pytest.mark.parametrize("tamper", ["body", "id", "timestamp", "secret"])
def test_changing_anything_signed_breaks_the_signature(tamper: str) -> None:
    secret, now = generate_signing_secret(), int(time.time())
    headers = signature_headers(secret, "msg_1", now, BODY)
    body = BODY.replace(b"blessed", b"failed") if tamper == "body" else BODY
    if tamper == "id":
        headers["webhook-id"] = "msg_2"
    if tamper == "timestamp":
        headers["webhook-timestamp"] = str(now - 1)
    verifier = Webhook(generate_signing_secret() if tamper == "secret" else secret)
    with pytest.raises(WebhookVerificationError):
        verifier.verify(body, headers)


def test_the_signature_is_the_base64_hmac_of_id_timestamp_and_body() -> None:
    # The example of the specification's reference libraries: same secret, id, time, body.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    assert signature(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == (
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


def test_a_sealed_secret_opens_only_with_the_same_key_and_context() -> None:
    box = AesGcmSecretBox.derived(SecretHasher(b"k" * 32), "webhook-signing-secrets")
    sealed = box.seal("whsec_abc", "endpoint-1")
    assert "whsec_abc" not in sealed
    assert box.open(sealed, "endpoint-1") == "whsec_abc"
    with pytest.raises(ValueError):
        box.open(sealed, "endpoint-2")
    other = AesGcmSecretBox.derived(SecretHasher(b"j" * 32), "webhook-signing-secrets")
    with pytest.raises(ValueError):
        other.open(sealed, "endpoint-1")
    with pytest.raises(ValueError):
        box.open("not base64!", "endpoint-1")
