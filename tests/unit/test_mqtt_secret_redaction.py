"""MQTT passwords and provisioning secrets never reach a log line either."""

from __future__ import annotations

from lineside.domain.secret_tokens import SecretKind, generate_secret
from lineside.entrypoints.logs import redact


def test_mqtt_passwords_and_provisioning_secrets_are_cut_to_their_prefix() -> None:
    password = generate_secret(SecretKind.MQTT_PASSWORD)
    provision = generate_secret(SecretKind.PROVISION_SECRET)

    line = f"CONNECT user=dev password={password} provision_secret={provision}"

    assert redact(line) == "CONNECT user=dev password=lsm_[redacted] provision_secret=lsp_[redacted]"


def test_every_kind_of_secret_lineside_issues_is_redacted() -> None:
    for kind in SecretKind:
        secret = generate_secret(kind)
        assert secret not in redact(f"x {secret} y"), kind
