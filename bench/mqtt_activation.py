"""Devices coming online over MQTT: N devices connect to a real ``lineside serve`` and its
embedded broker at once; each authenticates, is activated on that first connection and
publishes one telemetry message.

What it measures:
- connections/s: CONNECT sent to CONNACK received, over all N devices, and p50/p99 per connect;
- activations/s: from the first CONNECT until the database shows all N devices ``activated``
  (the broker writes activations and presence in batches, so this includes those writes);
- memory: the server's peak RSS, and its RSS with all N devices connected minus its RSS before
  they came, divided by N (memory per connected device).

The server is ``python -m lineside serve --no-migrate`` with a throwaway database and data
directory, started by this script as a subprocess with the broker on a free port. Before starting
it, the script seeds ``--devices`` devices with tokens (state ``defined``, in a product that
does not require blessing, so the first connection activates them).

The client is a minimal asyncio MQTT 3.1.1 client (CONNECT, CONNACK, PUBLISH QoS 0) in this
process, with at most ``--concurrency`` connects in flight; the server gets the other core.
Connections stay open until every device is activated and memory has been read, then close.

Reproduce (from the repository root):

    .venv/bin/python bench/mqtt_activation.py                       # SQLite, 1,000 then 10,000 devices
    .venv/bin/python bench/mqtt_activation.py --devices 10000 --backend postgres
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import statistics
import struct
import tempfile
import time
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from pathlib import Path

from device_auth import HOST, free_port, running_server, seed
from scratch import DEFAULT_POSTGRES_URL, cpu_model, postgres_database
from sqlalchemy import create_engine, text

ACTIVATION_DEADLINE_SECONDS = 600.0
CONNECT_TIMEOUT_SECONDS = 60.0


@dataclass
class ConnectResults:
    latencies: list[float]
    refused: int
    failed: int
    elapsed: float
    started: float


# -- a minimal MQTT 3.1.1 client --------------------------------------------------------------


def _remaining_length(length: int) -> bytes:
    encoded = bytearray()
    while True:
        byte, length = length % 128, length // 128
        encoded.append(byte | (0x80 if length else 0))
        if not length:
            return bytes(encoded)


def _string(value: str | bytes) -> bytes:
    raw = value.encode() if isinstance(value, str) else value
    return struct.pack("!H", len(raw)) + raw


def connect_packet(client_id: str, username: str, password: str) -> bytes:
    # Protocol "MQTT" level 4; flags: username, password, clean session; keep-alive 120 s.
    variable = _string("MQTT") + bytes([4, 0xC2]) + struct.pack("!H", 120)
    body = variable + _string(client_id) + _string(username) + _string(password)
    return b"\x10" + _remaining_length(len(body)) + body


def publish_packet(topic: str, payload: bytes) -> bytes:
    body = _string(topic) + payload
    return b"\x30" + _remaining_length(len(body)) + body


class Device:
    def __init__(self, device_id: str, token: str) -> None:
        self.device_id = device_id
        self.token = token
        self.writer: asyncio.StreamWriter | None = None

    async def come_online(self, port: int) -> float | None:
        """Connect, wait for CONNACK, publish once. Seconds taken, or None when refused."""
        started = time.perf_counter()
        reader, writer = await asyncio.open_connection(HOST, port)
        self.writer = writer
        writer.write(connect_packet(self.device_id, self.device_id, self.token))
        connack = await reader.readexactly(4)
        elapsed = time.perf_counter() - started
        if connack[0] != 0x20 or connack[3] != 0:
            return None
        telemetry = json.dumps({"temperature": 21.5}).encode()
        writer.write(publish_packet(f"devices/{self.device_id}/telemetry", telemetry))
        await writer.drain()
        return elapsed

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.write(b"\xe0\x00")  # DISCONNECT
            self.writer.close()
            with suppress(ConnectionError, OSError):
                await self.writer.wait_closed()


async def bring_online(devices: list[Device], port: int, concurrency: int) -> ConnectResults:
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    refused = failed = 0

    async def one(device: Device) -> None:
        nonlocal refused, failed
        async with gate:
            try:
                taken = await asyncio.wait_for(device.come_online(port), CONNECT_TIMEOUT_SECONDS)
            except (OSError, TimeoutError, asyncio.IncompleteReadError):
                failed += 1
                return
        if taken is None:
            refused += 1
        else:
            latencies.append(taken)

    started = time.perf_counter()
    await asyncio.gather(*(one(device) for device in devices))
    return ConnectResults(latencies, refused, failed, time.perf_counter() - started, started)


# -- the server side ----------------------------------------------------------------------------


def rss_bytes(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def activated_count(database_url: str) -> int:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return int(
                connection.execute(
                    text("SELECT count(*) FROM devices WHERE state = 'activated'")
                ).scalar_one()
            )
    finally:
        engine.dispose()


async def wait_for_activations(database_url: str, expected: int) -> float:
    """perf_counter time at which the database showed ``expected`` activated devices."""
    deadline = time.perf_counter() + ACTIVATION_DEADLINE_SECONDS
    while time.perf_counter() < deadline:
        if await asyncio.to_thread(activated_count, database_url) >= expected:
            return time.perf_counter()
        await asyncio.sleep(0.05)  # polling the database for a condition, with a deadline
    raise SystemExit(f"not all {expected} devices were activated within {ACTIVATION_DEADLINE_SECONDS:.0f} s")


async def measure(database_url: str, tokens: dict[str, str], port: int, pid: int, concurrency: int) -> None:
    devices = [Device(device_id, token) for token, device_id in tokens.items()]
    rss_before = rss_bytes(pid)
    results = await bring_online(devices, port, concurrency)
    activated_at = await wait_for_activations(database_url, len(results.latencies))
    rss_connected = rss_bytes(pid)
    peak = rss_bytes(pid, "VmHWM")
    await asyncio.gather(*(device.close() for device in devices))
    report(results, activated_at, rss_before, rss_connected, peak)


def report(results: ConnectResults, activated_at: float, before: int, connected: int, peak: int) -> None:
    ok = len(results.latencies)
    ordered = sorted(results.latencies) or [0.0]
    p90, p99 = (ordered[min(len(ordered) - 1, int(len(ordered) * share))] for share in (0.90, 0.99))
    activation_seconds = activated_at - results.started
    print(f"  connected        {ok} ok, {results.refused} refused, {results.failed} failed")
    print(f"  connections/s    {ok / results.elapsed:,.0f}  ({results.elapsed:.2f} s for all)")
    median = statistics.median(ordered)
    print(f"  connect p50/p90/p99  {median * 1000:.1f} / {p90 * 1000:.1f} / {p99 * 1000:.1f} ms")
    print(
        f"  activations/s    {ok / activation_seconds:,.0f}"
        f"  (all activated {activation_seconds:.2f} s after the first CONNECT)"
    )
    per_device = (connected - before) / max(ok, 1)
    print(
        f"  server memory    {before / 2**20:.0f} MiB idle, {connected / 2**20:.0f} MiB with {ok} connected,"
        f" peak {peak / 2**20:.0f} MiB"
    )
    print(f"  per device       {per_device / 1024:.1f} KiB")


def wait_for_port(port: int) -> None:
    deadline = time.monotonic() + CONNECT_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)  # polling for the broker to listen, with a deadline
    raise SystemExit(f"the broker did not listen on {port}")


def run_once(backend: str, count: int, concurrency: int, postgres_url: str) -> None:
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="lineside-bench-")))
        if backend == "postgres":
            url = stack.enter_context(postgres_database(postgres_url))
        else:
            url = f"sqlite:///{workdir / 'bench.db'}"
        print(f"{backend}: {count:,} devices, {concurrency} connects in flight")
        tokens = seed(url, workdir / "data", count)
        mqtt_port = free_port()
        pid = stack.enter_context(
            running_server(
                url, workdir, 1, free_port(), LINESIDE_MQTT_ENABLED="1", LINESIDE_MQTT_PORT=str(mqtt_port)
            )
        )
        wait_for_port(mqtt_port)
        asyncio.run(measure(url, tokens, mqtt_port, pid, concurrency))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, action="append", help="devices (repeatable) [1000 and 10000]")
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--concurrency", type=int, default=200, help="connects in flight [200]")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # 10,000 sockets here and in the server
    print(f"machine: {cpu_model()}, {os.cpu_count()} CPUs; file limit {hard} (was {soft})")
    for count in args.devices or [1000, 10000]:
        run_once(args.backend, count, args.concurrency, args.postgres_url)


if __name__ == "__main__":
    main()
