"""A real uvicorn server in a thread of the test process, on a free loopback port; and waiting
for a ``lineside serve`` subprocess to answer."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from lineside.bootstrap import Application
from lineside.entrypoints.api.app import create_app
from lineside.settings import Settings
from tests.conftest import SHARED_DEPLOYMENT_ENVIRONMENT

STARTUP_DEADLINE_SECONDS = 30.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        log_config=None,
        proxy_headers=False,  # as lineside serve: the app decides whom to believe
        lifespan="off",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_DEADLINE_SECONDS
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)  # polling for a condition, with a deadline
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def http_client_for(application: Application) -> Iterator[httpx.Client]:
    """An HTTP client of ``application``'s API, served on a real socket for the duration."""
    with serving(create_app(application)) as url, httpx.Client(base_url=url, timeout=30.0) as http:
        yield http


def wait_until_healthy(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    """Returns once ``url``/healthz answers 200; fails the test, with the log, if the process
    exits or the deadline passes first."""
    deadline = time.monotonic() + STARTUP_DEADLINE_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"{url} exited with {server.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)  # polling for a condition, with a deadline
    pytest.fail(f"{url} did not become healthy:\n{log.read_text()}")


@contextmanager
def lineside_serve(settings: Settings, http_port: int, log: Path, **environment: str) -> Iterator[str]:
    """``lineside serve`` as a subprocess on the test's database and data directory (its keys
    hash the test's secrets), until the block ends; yields its URL once it is healthy."""
    env = {
        **os.environ,
        "LINESIDE_DATABASE_URL": settings.database_url,
        "LINESIDE_DATA_DIR": str(settings.data_dir),
        **SHARED_DEPLOYMENT_ENVIRONMENT,
        "LINESIDE_PORT": str(http_port),
        "LINESIDE_LOG_LEVEL": "warning",
        **environment,
    }
    with log.open("wb") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "lineside", "serve", "--no-migrate"],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{http_port}"
    try:
        wait_until_healthy(url, server, log)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
