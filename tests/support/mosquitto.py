"""``lineside serve`` with ``LINESIDE_MQTT_BROKER=mosquitto``: a real Mosquitto 2 with
Lineside's plugin (compiled at the first start), in front of a real HTTP server.

Debian's ``mosquitto``, ``mosquitto-dev``, ``libmosquitto-dev``, ``libcurl4-openssl-dev``,
``libssl-dev``, ``libsqlite3-dev``, ``libpq-dev`` and a C compiler provide it; the tests skip
without them unless ``LINESIDE_REQUIRE_MOSQUITTO=1`` (CI) makes that a failure.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from lineside.adapters.mqtt.mosquitto import BUILD_PACKAGES, missing_for_mosquitto
from lineside.settings import Settings
from tests.support.server import free_port, lineside_serve

RECHECK_SECONDS = 0.5


@dataclass(frozen=True)
class MosquittoServer:
    http_url: str
    mqtt_port: int
    data_dir: Path
    log: Path


def require_mosquitto() -> None:
    missing = missing_for_mosquitto("mosquitto")
    if not missing:
        return
    reason = f"Mosquitto with its plugin headers is not installed ({', '.join(missing)}): {BUILD_PACKAGES}"
    if os.environ.get("LINESIDE_REQUIRE_MOSQUITTO") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


@contextmanager
def serving_with_mosquitto(
    settings: Settings, scratch: Path, **environment: str
) -> Iterator[MosquittoServer]:
    """``lineside serve`` on the test database with Mosquitto as its broker, until the block ends."""
    require_mosquitto()
    mqtt_port, log = free_port(), scratch / "serve.log"
    environment = {
        "LINESIDE_MQTT_BROKER": "mosquitto",
        "LINESIDE_MQTT_PORT": str(mqtt_port),
        "LINESIDE_MQTT_RECHECK_SECONDS": str(RECHECK_SECONDS),
        "LINESIDE_PRESENCE_FLUSH_SECONDS": "0.2",
        **environment,
    }
    with lineside_serve(settings, free_port(), log, **environment) as url:
        yield MosquittoServer(url, mqtt_port, settings.data_dir, log)
