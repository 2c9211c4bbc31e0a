"""The demo's private world: a temporary data directory and SQLite database, the API
(uvicorn in a thread), the embedded MQTT broker and a webhook receiver, each on a free
loopback port, all stopped (and the directory removed unless kept) on the way out."""

from __future__ import annotations

import json
import shutil
import socket
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from lineside.bootstrap import Application, bootstrap
from lineside.settings import Settings

LOOPBACK = "127.0.0.1"
START_DEADLINE_SECONDS = 30.0
POLL_SECONDS = 0.05


class DemoFailed(Exception):
    """A stage of the demo did not do what it should; the message is the one-line reason."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``predicate`` until it holds; ``DemoFailed`` naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise DemoFailed(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(POLL_SECONDS)  # polling a condition, with a deadline


@dataclass
class WebhookInbox:
    """What the local receiver got: event types counted, thread-safe."""

    types: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, body: bytes) -> None:
        try:
            kind = str(json.loads(body).get("type", "?"))
        except (ValueError, AttributeError):
            kind = "?"
        with self.lock:
            self.types[kind] += 1

    def count(self, kind: str) -> int:
        with self.lock:
            return self.types[kind]

    def snapshot(self) -> dict[str, int]:
        with self.lock:
            return dict(self.types)


@dataclass(frozen=True)
class DemoWorld:
    directory: Path
    application: Application
    api_url: str
    mqtt_host: str
    mqtt_port: int
    webhook_url: str
    inbox: WebhookInbox


@contextmanager
def demo_world(*, keep: bool) -> Iterator[DemoWorld]:
    """Everything the demo talks to, on the loopback, for the duration of the block."""
    directory = Path(tempfile.mkdtemp(prefix="lineside-demo-"))
    try:
        with ExitStack() as stack:
            api_port, mqtt_port = free_port(), free_port()
            settings = _settings(directory, api_port, mqtt_port)
            application = bootstrap(settings, migrate=True)
            stack.callback(application.close)
            api_url = stack.enter_context(_api(application, api_port))
            stack.enter_context(_broker(application, mqtt_port))
            inbox = WebhookInbox()
            webhook_url = stack.enter_context(_receiver(inbox))
            yield DemoWorld(directory, application, api_url, LOOPBACK, mqtt_port, webhook_url, inbox)
    finally:
        if not keep:
            shutil.rmtree(directory, ignore_errors=True)


def _settings(directory: Path, api_port: int, mqtt_port: int) -> Settings:
    return Settings(
        _env_file=None,
        database_url=f"sqlite:///{directory / 'lineside.db'}",
        data_dir=directory / "data",
        host=LOOPBACK,
        port=api_port,
        public_url=f"http://{LOOPBACK}:{api_port}",
        log_level="warning",
        webhook_worker=True,
        # The receiver is on the loopback, which webhooks refuse unless told otherwise.
        webhook_allow_private=True,
        webhook_poll_seconds=0.1,
        webhook_retry_scale=0.2,  # a delivery that fails once is retried after 1 s, not 5 s
        mqtt_enabled=False,  # the demo runs its own broker, below, on its own port
        mqtt_host=LOOPBACK,
        mqtt_port=mqtt_port,
        mqtt_tls_port=None,
        mqtt_recheck_seconds=0.5,
        presence_flush_seconds=0.1,
        # Every owner of the story signs up from the loopback: one address, many people.
        sign_ups_per_address_per_window=10_000,
    )


@contextmanager
def _api(application: Application, port: int) -> Iterator[str]:
    # Imported here: only the demo among the CLI's commands needs the web stack loaded.
    import uvicorn  # noqa: PLC0415

    from lineside.entrypoints.api.app import create_app  # noqa: PLC0415

    config = uvicorn.Config(
        create_app(application),
        host=LOOPBACK,
        port=port,
        log_level="warning",
        log_config=None,  # through the CLI's one redacting handler
        proxy_headers=False,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="demo-api", daemon=True)
    thread.start()
    wait_for(lambda: server.started or not thread.is_alive(), START_DEADLINE_SECONDS, "the API to start")
    if not server.started:
        raise DemoFailed(f"the API did not start on port {port}")
    try:
        yield f"http://{LOOPBACK}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@contextmanager
def _broker(application: Application, port: int) -> Iterator[None]:
    from lineside.entrypoints.mqtt import EmbeddedBroker  # noqa: PLC0415

    broker = EmbeddedBroker(application, host=LOOPBACK, port=port)
    broker.start()
    try:
        yield
    finally:
        broker.stop()


class _Receiver(ThreadingHTTPServer):
    # The webhook worker sends a whole batch at once: the default backlog of 5 would refuse
    # some connections and push those deliveries to their first retry.
    request_queue_size = 128


@contextmanager
def _receiver(inbox: WebhookInbox) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            inbox.record(self.rfile.read(length))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            del format, args  # quiet: the report counts what arrived

    server = _Receiver((LOOPBACK, 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="demo-webhooks", daemon=True)
    thread.start()
    try:
        yield f"http://{LOOPBACK}:{server.server_address[1]}/hooks"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
