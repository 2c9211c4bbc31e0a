"""Secrets never reach a log line: not in a request path, not through a child logger, not in
a library's record, not inside a traceback, in text or JSON."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from lineside.domain.secret_tokens import SecretKind, generate_secret
from lineside.entrypoints.logs import begin_request, configure_logging, note_organization, redact

PRODUCTION_TOKEN_ID = "0123456789abcdef" * 4


def every_kind_of_secret() -> dict[str, str]:
    secrets = {kind.name: generate_secret(kind) for kind in SecretKind}
    secrets["WEBHOOK_SECRET"] = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    secrets["PRODUCTION_TOKEN_ID"] = PRODUCTION_TOKEN_ID
    return secrets


# The loggers of each entrypoint and of the libraries they run.
LOGGERS = [
    "lineside.mqtt",
    "lineside.worker",
    "lineside.api",
    "lineside.broker_hooks",
    "lineside.services.mqtt_provisioning",
    "lineside.cli.demo",
    "uvicorn.access",
    "uvicorn.error",
    "amqtt.broker",
]


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    stream = io.StringIO()
    yield stream
    root.handlers[:] = saved[1]
    root.setLevel(saved[0])


def test_every_kind_of_lineside_secret_is_cut_to_its_prefix() -> None:
    line = "GET /claim/lsc_AbCdEfGhIjKlMnOpQrStUvWxYz HTTP/1.1 key=lsk_0123456789abcdef lsd_zzzzzzzzzz-_"
    assert redact(line) == "GET /claim/lsc_[redacted] HTTP/1.1 key=lsk_[redacted] lsd_[redacted]"


def test_ordinary_text_is_left_alone() -> None:
    line = "GET /api/v1/devices?limit=10 lsx_notours 0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
    assert redact(line) == line


def test_a_production_token_id_is_redacted_wherever_it_appears() -> None:
    assert redact(f'"GET /api/v1/enrollment-tokens/{PRODUCTION_TOKEN_ID} HTTP/1.1" 200') == (
        '"GET /api/v1/enrollment-tokens/[redacted] HTTP/1.1" 200'
    )
    assert PRODUCTION_TOKEN_ID not in redact(f"activated with token_id={PRODUCTION_TOKEN_ID}")


def test_a_plan_id_is_not_a_secret_and_stays_readable() -> None:
    plan_id = "0123456789abcdef" * 2
    assert redact(f"plan {plan_id}") == f"plan {plan_id}"


@pytest.mark.parametrize("log_format", ["text", "json"])
@pytest.mark.parametrize("logger_name", LOGGERS)
def test_no_secret_passes_the_handler_whatever_logger_writes_it(
    captured: io.StringIO, log_format: str, logger_name: str
) -> None:
    configure_logging("info", log_format, stream=captured)
    logger = logging.getLogger(logger_name)
    for name, secret in every_kind_of_secret().items():
        logger.warning("%s in the arguments: %s", name, secret)
        logger.warning(f"{name} in the message: {secret}")
        try:
            raise ValueError(f"{name} in an exception: {secret}")
        except ValueError:
            logger.exception("it failed")

    output = captured.getvalue()
    assert output.count("[redacted]") >= 3 * len(every_kind_of_secret())
    for name, secret in every_kind_of_secret().items():
        assert secret not in output, name


def test_json_logs_are_one_object_a_line_with_request_and_organization(captured: io.StringIO) -> None:
    configure_logging("info", "json", stream=captured)
    begin_request("req-42")
    note_organization("org-7")
    logging.getLogger("lineside.api").info("hello %s", "world")

    entry = json.loads(captured.getvalue().strip())
    assert entry["message"] == "hello world"
    assert entry["level"] == "info"
    assert entry["logger"] == "lineside.api"
    assert entry["request_id"] == "req-42"
    assert entry["org_id"] == "org-7"
    assert entry["time"].endswith("+00:00")


def test_configuring_twice_writes_each_record_once(captured: io.StringIO) -> None:
    configure_logging("info", "text", stream=captured)
    configure_logging("info", "text", stream=captured)
    logging.getLogger("lineside.mqtt").warning("once")
    assert captured.getvalue().count("once") == 1


def test_the_log_level_setting_holds_back_less_severe_records(captured: io.StringIO) -> None:
    configure_logging("warning", "text", stream=captured)
    logging.getLogger("lineside.worker").info("chatter")
    logging.getLogger("lineside.worker").warning("worth reading")
    assert "chatter" not in captured.getvalue()
    assert "worth reading" in captured.getvalue()
