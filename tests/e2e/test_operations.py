"""A real ``lineside serve`` as an operator runs it: metrics that add up across worker
processes, and SIGTERM that finishes what is in flight (a request, a webhook delivery,
presence of connected devices) and then exits within LINESIDE_SHUTDOWN_SECONDS."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from lineside.adapters.db import tables as t
from lineside.bootstrap import Application, bootstrap
from tests.e2e.test_webhook_delivery import environment, served
from tests.support.api import Tenant, new_tenant
from tests.support.mqtt import mqtt_client
from tests.support.server import free_port
from tests.support.webhooks import (
    Answer,
    Receiver,
    create_endpoint,
    isolated_database,
    wait_until,
    webhook_settings,
)

HOST = "127.0.0.1"
SHUTDOWN_SECONDS = 8


@pytest.fixture
def isolated_app(database_url: str, tmp_path: Path) -> Iterator[Application]:
    # A database of its own: no other server's webhook worker may take its deliveries.
    with isolated_database(database_url, tmp_path) as url:
        application = bootstrap(webhook_settings(url, tmp_path / "data"))
        yield application
        application.close()


def counter(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def test_two_workers_and_the_broker_report_one_set_of_metrics(
    isolated_app: Application, tmp_path: Path
) -> None:
    port, mqtt_port = free_port(), free_port()
    url = f"http://{HOST}:{port}"
    with (
        served(
            isolated_app,
            tmp_path / "serve.log",
            port,
            LINESIDE_WORKERS="2",
            LINESIDE_MQTT_ENABLED="1",
            LINESIDE_MQTT_PORT=str(mqtt_port),
        ),
        httpx.Client(base_url=url, timeout=30.0) as http,
    ):
        tenant = new_tenant(isolated_app, http)
        product_id = tenant.product()["id"]
        device_id = tenant.device(product_id)["id"]
        for _ in range(20):
            # A new connection each: the two workers share the listening socket.
            assert httpx.get(f"{url}/api/v1/products/{product_id}", headers=tenant.headers).status_code == 200
        with mqtt_client(HOST, mqtt_port, device_id, password=tenant.token(device_id)) as device:
            assert device.connack_rc == 0
        scrapes = [httpx.get(f"{url}/metrics").text for _ in range(6)]

    route = {"method": "GET", "route": "/api/v1/products/{product_id}", "status": "200"}
    assert {counter(text, "lineside_http_requests_total", **route) for text in scrapes} == {20.0}
    assert all(counter(text, "lineside_mqtt_connects_total", result="accepted") == 1 for text in scrapes)


def raw_upload_start(port: int, tenant: Tenant, product_id: str, size: int, first: int) -> socket.socket:
    """An image upload whose body is only partly sent: a request in flight."""
    connection = socket.create_connection((HOST, port), timeout=30)
    head = (
        f"POST /api/v1/products/{product_id}/firmware-releases?kind=application&version=1.0 HTTP/1.1\r\n"
        f"Host: {HOST}\r\nAuthorization: Bearer {tenant.api_key}\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {size}\r\n\r\n"
    )
    connection.sendall(head.encode() + b"\x00" * first)
    return connection


def uploading(data_dir: Path) -> bool:
    return any((data_dir / "firmware").glob(".upload-*"))


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex((HOST, port)) == 0


def test_sigterm_finishes_the_request_the_delivery_and_presence_in_flight_then_exits(
    isolated_app: Application, tmp_path: Path
) -> None:
    port, mqtt_port = free_port(), free_port()
    release_webhook = threading.Event()
    data_dir = isolated_app.settings.data_dir
    log = tmp_path / "serve.log"
    with (
        ExitStack() as stack,
        Receiver(lambda _path, _seen: Answer(200, hold=release_webhook)) as receiver,
        served(
            isolated_app,
            log,
            port,
            LINESIDE_MQTT_ENABLED="1",
            LINESIDE_MQTT_PORT=str(mqtt_port),
            LINESIDE_SHUTDOWN_SECONDS=str(SHUTDOWN_SECONDS),
        ) as server,
        httpx.Client(base_url=f"http://{HOST}:{port}", timeout=30.0) as http,
    ):
        tenant = new_tenant(isolated_app, http)
        create_endpoint(tenant, receiver.url(), ["device.defined"])
        product_id = tenant.product()["id"]
        device_id = tenant.device(product_id)["id"]  # its webhook is held by the receiver
        wait_until(lambda: receiver.in_flight == 1, "the delivery to reach the receiver")
        device = stack.enter_context(
            mqtt_client(HOST, mqtt_port, device_id, password=tenant.token(device_id))
        )
        assert device.connack_rc == 0
        wait_until(lambda: tenant.get(f"/api/v1/devices/{device_id}").json()["online"], "the device online")
        upload = raw_upload_start(port, tenant, product_id, size=2_000_000, first=1_200_000)
        wait_until(lambda: uploading(data_dir), "the upload to be in the route")

        stopped_at = time.monotonic()
        server.send_signal(signal.SIGTERM)
        wait_until(lambda: not listening(port), "the server to stop accepting connections")
        upload.sendall(b"\x00" * 800_000)
        answer = upload.recv(4096)
        release_webhook.set()
        exit_code = server.wait(timeout=SHUTDOWN_SECONDS + 20)
        took = time.monotonic() - stopped_at
        device.wait_disconnected()
        upload.close()

    assert answer.startswith(b"HTTP/1.1 201"), answer
    assert exit_code == 0, log.read_text()
    assert took < SHUTDOWN_SECONDS + 10
    with isolated_app.engine.connect() as connection:
        delivered = connection.execute(select(t.webhook_deliveries.c.status)).scalars().all()
        releases = connection.execute(select(t.firmware_releases.c.size_bytes)).scalars().all()
        online = connection.execute(
            select(t.devices.c.online).where(t.devices.c.id == device_id)
        ).scalar_one()
    assert delivered == ["succeeded"]
    assert releases == [2_000_000]
    assert online is False  # presence written once more on the way out


def test_a_request_that_never_ends_does_not_keep_the_server_past_its_bound(
    isolated_app: Application, tmp_path: Path
) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    with (
        served(isolated_app, log, port, LINESIDE_SHUTDOWN_SECONDS="2") as server,
        httpx.Client(base_url=f"http://{HOST}:{port}", timeout=30.0) as http,
    ):
        tenant = new_tenant(isolated_app, http)
        product_id = tenant.product()["id"]
        stuck = raw_upload_start(port, tenant, product_id, size=2_000_000, first=100)
        wait_until(lambda: uploading(isolated_app.settings.data_dir), "the upload to be in the route")

        stopped_at = time.monotonic()
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        took = time.monotonic() - stopped_at
        stuck.close()

    assert took < 2 + 10, log.read_text()


def test_the_worker_alone_stops_on_sigterm(isolated_app: Application, tmp_path: Path) -> None:
    worker = subprocess.Popen(
        [sys.executable, "-m", "lineside", "worker", "--no-migrate"],
        env=environment(isolated_app),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    wait_until(lambda: worker.stdout is not None and "delivering" in worker.stdout.readline(), "the worker")
    worker.send_signal(signal.SIGTERM)
    out, _ = worker.communicate(timeout=30)
    assert worker.returncode == 0
    assert "webhook worker stopped" in out
