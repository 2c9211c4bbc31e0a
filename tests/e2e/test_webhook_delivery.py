"""Webhooks end to end: ``lineside serve`` and ``lineside worker`` processes, a real receiver.

A server killed (SIGKILL) in the middle of a delivery and started again loses no event; two
workers on one database never send one delivery at the same time, and stop cleanly on
SIGTERM. Each test has a database of its own (see tests.support.webhooks).
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from standardwebhooks import Webhook

from lineside.adapters.db import tables as t
from lineside.bootstrap import Application, bootstrap
from tests.conftest import SHARED_DEPLOYMENT_ENVIRONMENT
from tests.support.api import Tenant, new_tenant
from tests.support.server import free_port, http_client_for
from tests.support.webhooks import (
    Answer,
    Receiver,
    create_endpoint,
    deliveries,
    events_of,
    isolated_database,
    wait_until,
    webhook_settings,
)

TIMEOUT_SECONDS = 1.0  # a lease is 2 x this + 5 s: how long a killed server's delivery waits


@pytest.fixture
def hooks_app(database_url: str, tmp_path: Path) -> Iterator[Application]:
    with isolated_database(database_url, tmp_path) as url:
        settings = webhook_settings(url, tmp_path / "data", webhook_timeout_seconds=TIMEOUT_SECONDS)
        application = bootstrap(settings)
        yield application
        application.close()


def environment(application: Application, **extra: str) -> dict[str, str]:
    settings = application.settings
    return {
        **os.environ,
        "LINESIDE_DATABASE_URL": settings.database_url,
        "LINESIDE_DATA_DIR": str(settings.data_dir),
        **SHARED_DEPLOYMENT_ENVIRONMENT,
        "LINESIDE_WEBHOOK_ALLOW_PRIVATE": "1",
        "LINESIDE_WEBHOOK_RETRY_SCALE": str(settings.webhook_retry_scale),
        "LINESIDE_WEBHOOK_TIMEOUT_SECONDS": str(settings.webhook_timeout_seconds),
        "LINESIDE_WEBHOOK_POLL_SECONDS": "0.05",
        "LINESIDE_LOG_LEVEL": "warning",
        "LINESIDE_MQTT_ENABLED": "0",  # no embedded broker: 1883 may be taken here
        **extra,
    }


def lineside(application: Application, log: Path, *args: str, **env: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "lineside", *args],
            env=environment(application, **env),
            stdout=output,
            stderr=subprocess.STDOUT,
        )


@contextmanager
def served(application: Application, log: Path, port: int, **env: str) -> Iterator[subprocess.Popen[bytes]]:
    """``lineside serve`` (its webhook worker on, unless ``env`` says otherwise)."""
    server = lineside(application, log, "serve", "--no-migrate", LINESIDE_PORT=str(port), **env)

    def healthy() -> bool:
        assert server.poll() is None, log.read_text()
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1.0).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(healthy, f"lineside serve to answer:\n{log.read_text() if log.exists() else ''}")
        yield server
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait(timeout=30)


def delivered_event_ids(receiver: Receiver, secret: str) -> set[str]:
    """Events whose webhook the receiver took (answered 200), each signature checked."""
    return {Webhook(secret).verify(r.body, r.headers)["data"]["event_id"] for r in receiver.answered(200)}


def test_a_server_killed_mid_delivery_and_started_again_loses_no_event(
    hooks_app: Application, tmp_path: Path
) -> None:
    release = threading.Event()
    first_request = threading.Lock()

    def behaviour(_path: str, _seen: int) -> Answer:
        # The very first request is held until the server is dead, then dropped unanswered.
        if first_request.acquire(blocking=False):
            return Answer(hold=release, drop=True)
        return Answer(200)

    port, log = free_port(), tmp_path / "serve.log"
    with Receiver(behaviour) as receiver:
        with (
            served(hooks_app, log, port) as server,
            httpx.Client(base_url=f"http://127.0.0.1:{port}") as http,
        ):
            tenant = new_tenant(hooks_app, http)
            endpoint = create_endpoint(tenant, receiver.url())
            product = tenant.product()
            for _ in range(5):
                tenant.device(product["id"])
            wait_until(lambda: receiver.in_flight >= 1, "a delivery in flight")
            server.send_signal(signal.SIGKILL)
            server.wait(timeout=30)
        release.set()

        with http_client_for(hooks_app) as http:  # while no server runs: no worker either
            offline = Tenant(http, tenant.organization_id, tenant.api_key)
            for _ in range(3):
                offline.device(product["id"])
            created = datetime.fromisoformat(endpoint["created_at"])
            expected = {
                e["id"] for e in events_of(offline) if datetime.fromisoformat(e["occurred_at"]) >= created
            }
        assert len(expected) == 10  # webhook.created, product.created, 8 x device.defined

        with served(hooks_app, log, free_port()):
            wait_until(lambda: expected <= delivered_event_ids(receiver, endpoint["secret"]), "every event")
    assert None in [r.status for r in receiver.received]  # the held one, cut off by the kill


WORKERS = 2
BATCH = 3
EVENTS = 60


def test_two_workers_never_send_one_delivery_at_the_same_time(hooks_app: Application, tmp_path: Path) -> None:
    both_sending = threading.Event()

    def behaviour(_path: str, _seen: int) -> Answer:
        # Hold every request until more are in flight than one worker sends at once: then
        # both workers are sending together, however slowly the machine started the second.
        if receiver.in_flight > BATCH:
            both_sending.set()
        return Answer(200, hold=both_sending)

    with Receiver(behaviour) as receiver:
        port = free_port()
        with (
            served(hooks_app, tmp_path / "serve.log", port, LINESIDE_WEBHOOK_WORKER="0"),
            httpx.Client(base_url=f"http://127.0.0.1:{port}") as http,
        ):
            tenant = new_tenant(hooks_app, http)
            endpoint = create_endpoint(tenant, receiver.url(), ["device.defined"])
            product = tenant.product()
            for _ in range(EVENTS):
                tenant.device(product["id"])
            # LINESIDE_WEBHOOK_WORKER=0: the server leaves the outbox to `lineside worker`.
            assert undispatched(hooks_app, tenant.organization_id) == EVENTS + 4

        logs = [tmp_path / f"worker-{n}.log" for n in range(WORKERS)]
        workers = [
            lineside(hooks_app, log, "worker", "--no-migrate", LINESIDE_WEBHOOK_BATCH_SIZE=str(BATCH))
            for log in logs
        ]
        try:
            wait_until(lambda: len(receiver.answered(200)) >= EVENTS, "every delivery", deadline=120)
        finally:
            for worker in workers:
                worker.send_signal(signal.SIGTERM)
            exits = [worker.wait(timeout=60) for worker in workers]
    assert exits == [0] * WORKERS, [log.read_text() for log in logs]
    assert all("webhook worker stopped" in log.read_text() for log in logs)

    by_id: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for request in receiver.received:
        by_id[request.webhook_id].append((request.started, request.finished))
    assert len(by_id) == EVENTS
    for spans in by_id.values():
        spans.sort()
        assert all(earlier[1] <= later[0] for earlier, later in itertools.pairwise(spans))
    assert all(len(spans) == 1 for spans in by_id.values())  # every lease held to the end
    assert both_sending.is_set() and receiver.max_in_flight > BATCH  # both workers sent at once
    with http_client_for(hooks_app) as http:
        sent = deliveries(Tenant(http, tenant.organization_id, tenant.api_key), endpoint["id"])
    assert {(d["status"], d["attempt_count"]) for d in sent} == {("succeeded", 1)}
    assert not any("Traceback" in log.read_text() for log in logs)


def undispatched(application: Application, organization_id: str) -> int:
    query = select(func.count()).where(
        t.events.c.organization_id == organization_id, t.events.c.dispatched_at.is_(None)
    )
    with application.engine.connect() as connection:
        return int(connection.execute(query).scalar_one())
