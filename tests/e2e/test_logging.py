"""Every entrypoint logs through the one redacting handler: the CLI group (which runs serve,
worker, demo and every other command), the multi-worker app factory, and a real
``lineside serve`` with its access log, in text and JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from lineside.settings import Settings
from tests.e2e.test_mqtt_serve import HOST, serve
from tests.support.mqtt import mqtt_client, wait_for
from tests.support.server import free_port
from tests.unit.test_log_redaction import LOGGERS, every_kind_of_secret

LEAK_EVERYWHERE = """
import logging
secrets = {secrets!r}
for name in {loggers!r}:
    for kind, secret in secrets.items():
        logging.getLogger(name).warning("%s via %s: %s", kind, name, secret)
        try:
            raise RuntimeError(secret)
        except RuntimeError:
            logging.getLogger(name).exception("failed with %s", kind)
"""


def run_python(code: str, directory: Path, **environment: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "LINESIDE_DATABASE_URL": f"sqlite:///{directory / 'lineside.db'}",
        "LINESIDE_DATA_DIR": str(directory / "data"),
        **environment,
    }
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


def assert_redacted(output: str, secrets: dict[str, str]) -> None:
    assert "[redacted]" in output, output[:2000]
    for kind, secret in secrets.items():
        assert secret not in output, kind


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_command_of_the_cli_group_logs_no_secret_through_any_child_logger(
    log_format: str, tmp_path: Path
) -> None:
    secrets = every_kind_of_secret()
    # A command added to the real group runs behind the same group callback as serve,
    # worker, demo and every other command.
    script = f"""
        import click
        from lineside.entrypoints.cli.main import cli

        @cli.command("leak")
        def leak():
            {LEAK_EVERYWHERE.format(secrets=secrets, loggers=LOGGERS).replace(chr(10), chr(10) + " " * 12)}

        cli(["leak"], standalone_mode=True)
    """
    result = run_python(script, tmp_path, LINESIDE_LOG_FORMAT=log_format)

    assert result.returncode == 0, result.stderr
    assert_redacted(result.stderr, secrets)
    assert result.stderr.count("via lineside.mqtt") == len(secrets)
    if log_format == "json":
        assert all(json.loads(line)["level"] for line in result.stderr.splitlines())


def test_the_multi_worker_app_factory_logs_no_secret(tmp_path: Path) -> None:
    secrets = every_kind_of_secret()
    script = f"""
        from lineside.entrypoints.asgi import create_app_from_environment
        create_app_from_environment()
        {LEAK_EVERYWHERE.format(secrets=secrets, loggers=LOGGERS).replace(chr(10), chr(10) + " " * 8)}
    """
    result = run_python(script, tmp_path)

    assert result.returncode == 0, result.stderr
    assert_redacted(result.stderr, secrets)


def test_lineside_serve_writes_json_access_lines_with_request_ids_and_no_secret(settings: Settings) -> None:
    secrets = every_kind_of_secret()
    http_port, mqtt_port = free_port(), free_port()
    server = serve(
        settings,
        http_port,
        LINESIDE_MQTT_PORT=str(mqtt_port),
        LINESIDE_LOG_LEVEL="info",
        LINESIDE_LOG_FORMAT="json",
    )
    url = f"http://{HOST}:{http_port}"
    try:
        wait_for(lambda: _healthy(url) or server.poll() is not None, 30, "lineside serve")
        claim = httpx.get(f"{url}/claim/{secrets['CLAIM_CODE']}", headers={"X-Request-ID": "trace-1"})
        httpx.get(f"{url}/api/v1/enrollment-tokens/{secrets['PRODUCTION_TOKEN_ID']}")
        httpx.get(f"{url}/broker/mosquitto/auth", params={"password": secrets["MQTT_PASSWORD"]})
        with mqtt_client(HOST, mqtt_port, "nobody", password=secrets["DEVICE_TOKEN"]) as refused:
            assert refused.connack_rc != 0
    finally:
        server.terminate()
        _out, err = server.communicate(timeout=30)

    assert claim.headers["X-Request-ID"] == "trace-1"
    entries = [json.loads(line) for line in err.splitlines() if line.strip()]
    access = [entry for entry in entries if entry["logger"] == "uvicorn.access"]
    assert any(entry.get("request_id") == "trace-1" for entry in access), access
    assert all(entry.get("request_id") for entry in access)
    assert_redacted(err, {k: secrets[k] for k in ("CLAIM_CODE", "PRODUCTION_TOKEN_ID", "MQTT_PASSWORD")})
    assert secrets["DEVICE_TOKEN"] not in err


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200
    except httpx.TransportError:
        return False
