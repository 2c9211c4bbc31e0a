"""A RabbitMQ node of the test's own (MQTT plugin + HTTP auth backend pointed at Lineside),
beside whatever node the machine already runs: its own node name, ports, data directories,
HOME (so its own Erlang cookie), and no system-wide rabbitmq-env.conf.

Debian's ``rabbitmq-server`` package provides it; the tests skip without it unless
``LINESIDE_REQUIRE_RABBITMQ=1`` (CI) makes that a failure.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.server import free_port

RABBITMQ_BIN = Path(os.environ.get("LINESIDE_RABBITMQ_BIN", "/usr/lib/rabbitmq/bin"))
STARTUP_DEADLINE_SECONDS = 120.0
STOP_DEADLINE_SECONDS = 60.0


@dataclass(frozen=True)
class RabbitNode:
    name: str
    mqtt_port: int
    log: Path


def require_rabbitmq() -> None:
    if (RABBITMQ_BIN / "rabbitmq-server").exists():
        return
    reason = f"RabbitMQ is not installed ({RABBITMQ_BIN}/rabbitmq-server; apt-get install rabbitmq-server)"
    if os.environ.get("LINESIDE_REQUIRE_RABBITMQ") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def _configuration(auth_url: str, amqp_port: int, mqtt_port: int) -> str:
    return "\n".join(
        [
            f"listeners.tcp.default = 127.0.0.1:{amqp_port}",
            f"mqtt.listeners.tcp.default = 127.0.0.1:{mqtt_port}",
            "mqtt.allow_anonymous = false",
            "auth_backends.1 = http",
            "auth_http.http_method = post",
            f"auth_http.user_path = {auth_url}/user",
            f"auth_http.vhost_path = {auth_url}/vhost",
            f"auth_http.resource_path = {auth_url}/resource",
            f"auth_http.topic_path = {auth_url}/topic",
            "",
        ]
    )


def _environment(base: Path, name: str, amqp_port: int) -> dict[str, str]:
    empty = base / "rabbitmq-env.conf"
    empty.write_text("")
    return {
        **os.environ,
        "HOME": str(base),
        "RABBITMQ_NODENAME": name,
        "RABBITMQ_NODE_PORT": str(amqp_port),
        "RABBITMQ_DIST_PORT": str(free_port()),
        "RABBITMQ_CONF_ENV_FILE": str(empty),
        "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
        "RABBITMQ_ADVANCED_CONFIG_FILE": str(base / "advanced.config"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
        "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
        "RABBITMQ_LOG_BASE": str(base / "log"),
        "RABBITMQ_PID_FILE": str(base / "rabbit.pid"),
        "RABBITMQ_PLUGINS_EXPAND_DIR": str(base / "plugins-expand"),
        "RABBITMQ_FEATURE_FLAGS_FILE": str(base / "feature_flags"),
        "RABBITMQ_QUORUM_DIR": str(base / "quorum"),
        "RABBITMQ_STREAM_DIR": str(base / "stream"),
        "ERL_EPMD_ADDRESS": "127.0.0.1",
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
    }


def _accepts(port: int) -> bool:
    with suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1.0):
        return True
    return False


def _wait_for_mqtt(node: RabbitNode, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_DEADLINE_SECONDS
    while not _accepts(node.mqtt_port):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"RabbitMQ node {node.name} did not start:\n{node.log.read_text()[-4000:]}")
        time.sleep(0.2)  # polling for a condition, with a deadline


def _stop(node: RabbitNode, process: subprocess.Popen[bytes], env: dict[str, str]) -> None:
    with suppress(subprocess.TimeoutExpired, OSError):
        subprocess.run(
            [str(RABBITMQ_BIN / "rabbitmqctl"), "-n", node.name, "stop"],
            env=env,
            capture_output=True,
            timeout=STOP_DEADLINE_SECONDS,
            check=False,
        )
    try:
        process.wait(timeout=STOP_DEADLINE_SECONDS)
    except subprocess.TimeoutExpired:
        # The node's own process group only: never another node on this machine.
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=STOP_DEADLINE_SECONDS)


@contextmanager
def rabbitmq_node(auth_url: str, scratch: Path) -> Iterator[RabbitNode]:
    """A running node whose MQTT listener authenticates and authorises through
    ``auth_url`` (``.../user``, ``/vhost``, ``/resource``, ``/topic``); stopped and removed after."""
    require_rabbitmq()
    base = scratch / f"rabbit-{secrets.token_hex(4)}"
    base.mkdir(parents=True)
    amqp_port, mqtt_port = free_port(), free_port()
    (base / "rabbitmq.conf").write_text(_configuration(auth_url, amqp_port, mqtt_port))
    (base / "enabled_plugins").write_text("[rabbitmq_mqtt,rabbitmq_auth_backend_http].\n")
    node = RabbitNode(f"lineside-test-{secrets.token_hex(4)}@localhost", mqtt_port, base / "server.log")
    env = _environment(base, node.name, amqp_port)
    with node.log.open("wb") as output:
        process = subprocess.Popen(
            [str(RABBITMQ_BIN / "rabbitmq-server")],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_for_mqtt(node, process)
        yield node
    finally:
        _stop(node, process, env)
        shutil.rmtree(base, ignore_errors=True)
