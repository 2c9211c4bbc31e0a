"""Secrets handed out once, and the keyed hashes kept instead of them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

import pytest

from lineside.domain.secret_tokens import (
    SECRET_BYTES,
    SecretHasher,
    SecretKind,
    display_prefix,
    generate_secret,
)

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
URLSAFE = re.compile(r"^[A-Za-z0-9_-]+$")


def test_each_kind_of_secret_has_its_own_recognisable_prefix() -> None:
    assert SecretKind.API_KEY.value == "lsk_"
    assert SecretKind.DEVICE_TOKEN.value == "lsd_"
    assert generate_secret(SecretKind.API_KEY).startswith("lsk_")
    assert generate_secret(SecretKind.DEVICE_TOKEN).startswith("lsd_")


@pytest.mark.parametrize("kind", list(SecretKind), ids=lambda k: k.name.lower())
def test_a_secret_carries_at_least_128_random_bits_in_url_safe_text(kind: SecretKind) -> None:
    body = generate_secret(kind).removeprefix(kind.value)
    assert URLSAFE.match(body)
    raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    assert len(raw) == SECRET_BYTES >= 16
    assert len(body) == 43  # token_urlsafe(32): 256 bits


def test_secrets_never_repeat() -> None:
    made = {generate_secret(SecretKind.DEVICE_TOKEN) for _ in range(2000)}
    assert len(made) == 2000


def test_random_bytes_are_spread_across_the_alphabet() -> None:
    # A crude guard against a constant or counter: 200 secrets use nearly all 64 symbols.
    symbols = set("".join(generate_secret(SecretKind.API_KEY)[4:] for _ in range(200)))
    assert len(symbols) >= 60


def test_the_display_prefix_tells_keys_apart_without_revealing_them() -> None:
    secret = generate_secret(SecretKind.API_KEY)
    prefix = display_prefix(secret)
    assert secret.startswith(prefix)
    assert len(prefix) == 10
    assert len(secret) - len(prefix) >= 22  # >= 128 bits stay hidden


def test_the_hash_is_hmac_sha256_under_the_server_key() -> None:
    secret = generate_secret(SecretKind.DEVICE_TOKEN)
    expected = hmac.new(KEY, secret.encode(), hashlib.sha256).hexdigest()
    assert SecretHasher(KEY).hash(secret) == expected
    assert expected != hashlib.sha256(secret.encode()).hexdigest()


def test_hashing_is_deterministic_so_a_lookup_is_one_probe() -> None:
    secret = generate_secret(SecretKind.API_KEY)
    assert SecretHasher(KEY).hash(secret) == SecretHasher(KEY).hash(secret)


def test_different_server_keys_give_different_hashes() -> None:
    secret = generate_secret(SecretKind.API_KEY)
    assert SecretHasher(KEY).hash(secret) != SecretHasher(OTHER_KEY).hash(secret)


def test_different_secrets_give_different_hashes() -> None:
    hasher = SecretHasher(KEY)
    assert hasher.hash("lsk_a") != hasher.hash("lsk_b")


def test_the_hash_does_not_contain_the_secret() -> None:
    secret = generate_secret(SecretKind.DEVICE_TOKEN)
    stored = SecretHasher(KEY).hash(secret)
    assert secret[4:] not in stored
    assert re.fullmatch(r"[0-9a-f]{64}", stored)


def test_matches_accepts_the_right_secret_and_refuses_others() -> None:
    hasher = SecretHasher(KEY)
    secret = generate_secret(SecretKind.DEVICE_TOKEN)
    stored = hasher.hash(secret)
    assert hasher.matches(secret, stored) is True
    assert hasher.matches(secret + "x", stored) is False
    assert hasher.matches(generate_secret(SecretKind.DEVICE_TOKEN), stored) is False
    assert hasher.matches(secret, "") is False
    assert SecretHasher(OTHER_KEY).matches(secret, stored) is False


@pytest.mark.parametrize("length", [0, 16, 31])
def test_a_server_key_shorter_than_32_bytes_is_refused(length: int) -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        SecretHasher(b"k" * length)


def test_a_longer_server_key_is_fine() -> None:
    assert SecretHasher(b"k" * 64).matches("lsk_x", SecretHasher(b"k" * 64).hash("lsk_x"))


def test_the_prepared_key_pads_give_exactly_the_standard_hmac() -> None:
    for key in (b"k" * 32, b"x" * 64, b"y" * 100):
        hasher = SecretHasher(key)
        for secret in ("lsd_abc", "", "ünïcode"):
            assert hasher.hash(secret) == hmac.new(key, secret.encode(), hashlib.sha256).hexdigest()


def test_secrets_made_in_bulk_are_distinct_prefixed_and_as_long_as_single_ones() -> None:
    from lineside.domain.secret_tokens import generate_secrets

    many = generate_secrets(SecretKind.DEVICE_TOKEN, 1000)
    single = generate_secret(SecretKind.DEVICE_TOKEN)
    assert len(set(many)) == 1000
    assert all(s.startswith("lsd_") and len(s) == len(single) for s in many)
