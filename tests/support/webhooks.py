"""Webhook tests' helpers: a real HTTP receiver on the loopback, and a database of their own.

Webhook tests get a fresh database: any ``lineside serve`` another test tier left running
on the shared one delivers webhooks too (its worker is on by default), and must not take
these tests' deliveries.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from lineside.adapters.db.engine import create_database_engine
from lineside.adapters.db.migrate import upgrade_database
from lineside.bootstrap import Application, bootstrap
from lineside.settings import Settings

DEADLINE_SECONDS = 60.0


@dataclass(frozen=True)
class Received:
    """One request the receiver got, and what it answered (None: it dropped the connection)."""

    path: str
    headers: dict[str, str]
    body: bytes
    started: float
    finished: float
    status: int | None

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]


@dataclass(frozen=True)
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    hold: threading.Event | None = None  # wait for this before answering
    hold_seconds: float = 0.0  # or be this slow (a receiver's behaviour, not a test's wait)
    drop: bool = False  # close the connection without an answer


# How the receiver answers: given the request's path and how many times it has already seen
# the request's webhook-id.
Behaviour = Callable[[str, int], Answer]


def always(status: int = 200) -> Behaviour:
    return lambda _path, _seen: Answer(status)


def fail_first(times: int, status: int = 500) -> Behaviour:
    """Every delivery fails ``times`` times, then gets through."""
    return lambda _path, seen: Answer(status if seen < times else 200)


class Receiver:
    """A threaded HTTP server on 127.0.0.1 that records every request it gets."""

    def __init__(self, behaviour: Behaviour | None = None) -> None:
        self.behaviour = behaviour or always(200)
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._seen: dict[str, int] = {}
        self._in_flight = 0
        self.max_in_flight = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        port: int = self._server.server_address[1]
        return port

    def url(self, path: str = "/hooks") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    def answered(self, status: int = 200) -> list[Received]:
        return [request for request in self.received if request.status == status]

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        started = time.monotonic()
        length = int(handler.headers.get("content-length", "0"))
        body = handler.rfile.read(length)
        headers = {name.lower(): value for name, value in handler.headers.items()}
        with self._lock:
            key = headers.get("webhook-id", "")
            seen = self._seen.get(key, 0)
            self._seen[key] = seen + 1
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        # A body cut short (the sender died while sending) is never taken, as no real
        # receiver would take it.
        answer = self.behaviour(handler.path, seen) if len(body) == length else Answer(drop=True)
        status: int | None = None
        try:
            if answer.hold is not None:
                answer.hold.wait(DEADLINE_SECONDS)
            if answer.hold_seconds:
                time.sleep(answer.hold_seconds)
            if answer.drop:
                handler.close_connection = True
            else:
                handler.send_response(answer.status)
                for name, value in answer.headers.items():
                    handler.send_header(name, value)
                handler.send_header("content-length", "0")
                handler.end_headers()
                handler.wfile.flush()
                status = answer.status
        except OSError:
            status = None  # the sender hung up before it got the answer
        finally:
            with self._lock:
                self._in_flight -= 1
                self._received.append(
                    Received(handler.path, headers, body, started, time.monotonic(), status)
                )

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def wait_until(condition: Callable[[], Any], what: str, deadline: float = DEADLINE_SECONDS) -> Any:
    """Poll ``condition`` until it returns something truthy, or fail saying ``what`` never came."""
    end = time.monotonic() + deadline
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)  # polling for a condition, with a deadline


@contextmanager
def isolated_database(like_url: str, scratch: Path) -> Iterator[str]:
    """A new, migrated database on the same backend as ``like_url``, dropped afterwards."""
    url = make_url(like_url)
    if url.get_backend_name() == "sqlite":
        path = scratch / f"webhooks-{secrets.token_hex(4)}.db"
        yield _migrated(f"sqlite:///{path}")
        return
    name = f"lineside_webhooks_{secrets.token_hex(4)}"
    # The server's admin database, as tests/conftest.py finds it.
    admin_url = os.environ.get("LINESIDE_TEST_POSTGRES_URL") or url.set(database="postgres")
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield _migrated(url.set(database=name).render_as_string(hide_password=False))
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


def _migrated(url: str) -> str:
    engine = create_database_engine(url)
    upgrade_database(engine)
    engine.dispose()
    return url


# -- the API, as a tenant sees it ------------------------------------------------------------

API = "/api/v1"


def webhook_settings(
    database_url: str, data_dir: Path, *, allow_private: bool = True, **extra: Any
) -> Settings:
    """Settings for a webhook test: a tiny retry schedule (5 ms, 30 ms, ...) and a quick poll."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "data_dir": data_dir,
        "webhook_allow_private": allow_private,
        "webhook_retry_scale": 0.001,
        "webhook_timeout_seconds": 2.0,
        "webhook_poll_seconds": 0.02,
        **extra,
    }
    return Settings(**values, _env_file=None)


@contextmanager
def isolated_application(like_url: str, data_dir: Path, scratch: Path, **extra: Any) -> Iterator[Application]:
    """An application on a database of its own (no other test's events or running worker),
    with ``webhook_settings`` (plus ``extra``)."""
    with isolated_database(like_url, scratch) as url:
        application = bootstrap(webhook_settings(url, data_dir, **extra))
        try:
            yield application
        finally:
            application.close()


def create_endpoint(tenant: Any, url: str, event_types: list[str] | None = None) -> dict[str, Any]:
    created: dict[str, Any] = tenant.created(
        f"{API}/webhooks", {"url": url, "event_types": event_types or ["*"]}
    )
    return created


def deliveries(tenant: Any, endpoint_id: str, status: str | None = None) -> list[dict[str, Any]]:
    params = {"limit": "1000", **({"status": status} if status else {})}
    response = tenant.get(f"{API}/webhooks/{endpoint_id}/deliveries", params=params)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def delivery(tenant: Any, delivery_id: str) -> dict[str, Any]:
    response = tenant.get(f"{API}/webhook-deliveries/{delivery_id}")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def events_of(tenant: Any, **params: str) -> list[dict[str, Any]]:
    response = tenant.get(f"{API}/audit-events", params={"limit": "1000", **params})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items
