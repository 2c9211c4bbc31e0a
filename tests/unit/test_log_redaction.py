"""Secrets never reach a log line, even inside a request path."""

from __future__ import annotations

import logging

from lineside.entrypoints.api.log_redaction import RedactSecrets, redact


def test_every_kind_of_lineside_secret_is_cut_to_its_prefix() -> None:
    line = "GET /claim/lsc_AbCdEfGhIjKlMnOpQrStUvWxYz HTTP/1.1 key=lsk_0123456789abcdef lsd_zzzzzzzzzz-_"
    assert redact(line) == "GET /claim/lsc_[redacted] HTTP/1.1 key=lsk_[redacted] lsd_[redacted]"


def test_a_log_record_is_redacted_in_its_arguments_before_it_is_formatted() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s"',
        ("1.2.3.4", "GET", "/claim/lsc_secretcode1234"),
        None,
    )
    assert RedactSecrets().filter(record)
    assert record.getMessage() == '1.2.3.4 - "GET /claim/lsc_[redacted]"'


def test_ordinary_text_is_left_alone() -> None:
    assert redact("GET /api/v1/devices?limit=10 lsx_notours") == "GET /api/v1/devices?limit=10 lsx_notours"


def test_factory_enrollment_tokens_are_cut_to_their_prefix() -> None:
    assert redact("enrolled with lsf_AbCdEfGhIjKlMnOp") == "enrolled with lsf_[redacted]"


def test_a_production_token_id_in_a_claim_poll_path_is_redacted() -> None:
    token_id = "0123456789abcdef" * 4
    line = f'"GET /api/v1/enrollment-tokens/{token_id} HTTP/1.1" 200'
    assert redact(line) == '"GET /api/v1/enrollment-tokens/[redacted] HTTP/1.1" 200'


def test_a_webhook_signing_secret_is_cut_to_its_prefix() -> None:
    assert redact("secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw") == "secret whsec_[redacted]"
