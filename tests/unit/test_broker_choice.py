"""Which broker ``lineside serve`` runs (``LINESIDE_MQTT_BROKER``, 'auto' by default), and the
access lines of the Mosquitto plugin's routine calls kept out of the log."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from lineside.adapters.mqtt import mosquitto
from lineside.entrypoints.logs import configure_logging
from lineside.entrypoints.mosquitto import chosen_broker, with_broker_chosen
from lineside.settings import Settings


def settings(**values: object) -> Settings:
    """Settings with the default broker, whatever the suite pins (tests/conftest.py)."""
    return Settings(_env_file=None, **{"mqtt_broker": "auto", **values})  # type: ignore[arg-type]


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A machine with Mosquitto and its plugin's build packages: fake headers and tools."""
    headers = tuple(tmp_path / header.name for header in mosquitto.BUILD_HEADERS)
    for header in headers:
        header.write_text("")
    monkeypatch.setattr(mosquitto, "BUILD_HEADERS", headers)
    monkeypatch.setattr("shutil.which", lambda tool: f"/usr/bin/{tool}")
    return tmp_path


def test_auto_is_the_default_and_picks_mosquitto_where_it_is_installed(installed: Path) -> None:
    assert Settings.model_fields["mqtt_broker"].default == "auto"
    assert chosen_broker(settings()) == "mosquitto"


def test_auto_picks_the_embedded_broker_without_a_header_or_a_tool(
    installed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (installed / "sqlite3.h").unlink()
    assert chosen_broker(settings()) == "embedded"
    (installed / "sqlite3.h").write_text("")
    monkeypatch.setattr("shutil.which", lambda tool: None if tool == "cc" else tool)
    assert chosen_broker(settings()) == "embedded"


def test_auto_picks_the_embedded_broker_for_a_tls_listener(installed: Path) -> None:
    """The TLS listener (and its just-in-time registration) is the embedded broker's alone."""
    assert chosen_broker(settings(mqtt_tls_port=8883)) == "embedded"


def test_a_named_broker_is_kept_whatever_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shutil.which", lambda tool: None)
    assert chosen_broker(settings(mqtt_broker="mosquitto")) == "mosquitto"
    assert chosen_broker(settings(mqtt_broker="embedded")) == "embedded"


def test_the_choice_is_made_once_and_handed_to_the_workers(
    installed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LINESIDE_MQTT_BROKER", raising=False)
    chosen = with_broker_chosen(settings())
    assert chosen.mqtt_broker == "mosquitto"
    assert Settings(_env_file=None).mqtt_broker == "mosquitto"  # what a worker process reads


@pytest.fixture(autouse=True)
def uvicorn_access_as_configured() -> Iterator[None]:
    """uvicorn, run in-process by earlier tests, may have left its access logger a level or
    disabled; here the level is the root's, as in a fresh ``lineside serve``."""
    access = logging.getLogger("uvicorn.access")
    level, disabled = access.level, access.disabled
    access.setLevel(logging.NOTSET)
    access.disabled = False
    yield
    access.setLevel(level)
    access.disabled = disabled


@pytest.fixture
def access_log() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging("info", stream=stream)
    yield stream
    configure_logging("info")


def access(path: str, status: int) -> None:
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "POST", path, "1.1", status
    )


def test_the_plugins_routine_calls_leave_no_access_line(access_log: io.StringIO) -> None:
    access("/broker/mosquitto/tick", 200)
    access("/broker/mosquitto/arrivals", 200)
    access("/broker/mosquitto/tick", 401)  # a wrong secret is worth a line
    access("/api/v1/devices", 200)
    lines = access_log.getvalue().splitlines()
    assert len(lines) == 2
    assert '/broker/mosquitto/tick HTTP/1.1" 401' in lines[0]
    assert "/api/v1/devices" in lines[1]


def test_at_debug_level_every_call_is_logged() -> None:
    stream = io.StringIO()
    configure_logging("debug", stream=stream)
    try:
        access("/broker/mosquitto/tick", 200)
    finally:
        configure_logging("info")
    assert "/broker/mosquitto/tick" in stream.getvalue()
