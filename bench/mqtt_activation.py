"""Devices coming online over MQTT: N devices connect to a real ``lineside serve`` at once, to
its embedded broker or to Mosquitto run by it with Lineside's plugin; each authenticates, is
activated on that first connection and publishes one telemetry message. In the same run the
same client connects the same N devices to a peer: a bare Mosquitto 2 checking a password file.

What it measures, per broker (``--broker``) and per device count:
- connections/s: CONNECT sent to CONNACK received, over all N devices, and p50/p90/p99 per
  connect;
- activations/s: from the first CONNECT until the database shows all N devices ``activated``
  (the broker writes activations and presence in batches, so this includes those writes);
- memory: the RSS of the server and its child processes (Mosquitto, with ``--broker
  mosquitto``; from /proc/<pid>/task/*/children and /proc/<pid>/status) with all N devices
  connected minus their RSS before the devices came, divided by N (memory per connected
  device, also per process when there are several), and the sum of their peak RSS;
- listen overflows: SYNs the kernel dropped on a full accept queue while the devices connected
  (machine-wide, /proc/net/netstat); each costs its device a 1 s retransmission. Mosquitto
  listens with a backlog of 100, so with 200 connects in flight some of its p99s are 1 s;
- the peer, measured just before with the same client: a bare Mosquitto 2 (``/usr/sbin/mosquitto``,
  ``allow_anonymous false``, a ``password_file`` of the same N device ids and tokens hashed by
  ``mosquitto_passwd -U``, so a salted PBKDF2-SHA512 per CONNECT). Its connections/s, p50/p99
  and RSS per connected device, read the same way; nothing to activate there;
- the ratios: Lineside's activations/s / the peer's connections/s (issue 18's target: at least
  0.5 on the default broker) and its KiB per connected device beside the target (under 24 KiB
  at 10,000 devices) and beside the peer's.

The server is ``python -m lineside serve --no-migrate`` (1 worker) with a throwaway database and
data directory, started by this script as a subprocess with ``LINESIDE_MQTT_BROKER`` set to the
broker measured and the broker on a free port. Before starting it, the script seeds
``--devices`` devices with tokens (state ``defined``, in a product that does not require
blessing, so the first connection activates them); each broker gets a fresh database.

The client is a minimal asyncio MQTT 3.1.1 client (CONNECT, CONNACK, PUBLISH QoS 0) in this
process, with at most ``--concurrency`` connects in flight; the server gets the other core.
Connections stay open until every device is activated and memory has been read, then close.
The script raises its soft file limit to the hard one; the server, Mosquitto and the peer
inherit it.

Reproduce (from the repository root):

    .venv/bin/python bench/mqtt_activation.py              # SQLite, both brokers, 1,000 then 10,000 devices
    .venv/bin/python bench/mqtt_activation.py --devices 10000 --backend postgres
    .venv/bin/python bench/mqtt_activation.py --devices 1000 --broker mosquitto
    .venv/bin/python bench/mqtt_activation.py --devices 10000 --fleet 1000000 --broker both  # fleet size
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import pwd
import resource
import shutil
import socket
import struct
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from device_auth import HOST, free_port, running_server, seed
from scratch import DEFAULT_POSTGRES_URL, postgres_database, print_machine, stop_cleanly_on_signals
from sqlalchemy import create_engine, text

from lineside.entrypoints.mosquitto import chosen_broker
from lineside.settings import Settings

ACTIVATION_DEADLINE_SECONDS = 600.0
CONNECT_TIMEOUT_SECONDS = 60.0
STOP_GRACE_SECONDS = 10.0
PEER_MOSQUITTO = "/usr/sbin/mosquitto"
BROKERS = ("embedded", "mosquitto")
ACTIVATION_SHARE_TARGET = 0.5  # of the peer's connections/s, on the default broker (issue 18)
KIB_PER_DEVICE_TARGET = 24.0  # at 10,000 devices (issue 18)


@dataclass
class ConnectResults:
    latencies: list[float]
    refused: int
    failed: int
    elapsed: float
    started: float


@dataclass
class Memory:
    before: int
    connected: int
    peak: int
    growth: dict[str, int]  # connected minus before, bytes, per process of the tree (by name)


@dataclass
class Outcome:
    """One broker's figures for N devices."""

    name: str
    results: ConnectResults
    activation_seconds: float | None  # None for the peer: nothing to activate
    memory: Memory
    listen_overflows: int  # SYNs the kernel dropped on a full accept queue, machine-wide

    @property
    def ok(self) -> int:
        return len(self.results.latencies)

    @property
    def connections_per_second(self) -> float:
        return self.ok / self.results.elapsed

    @property
    def activations_per_second(self) -> float | None:
        return None if self.activation_seconds is None else self.ok / self.activation_seconds

    @property
    def kib_per_device(self) -> float:
        return (self.memory.connected - self.memory.before) / max(self.ok, 1) / 1024

    def quantile(self, share: float) -> float:
        ordered = sorted(self.results.latencies) or [0.0]
        return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


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
            self.writer = None


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


# -- memory of a process and its children, from /proc ------------------------------------------


def status_kib(pid: int, field: str) -> int:
    with suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def process_tree(pid: int) -> list[int]:
    """``pid`` and its live descendants (/proc/<pid>/task/*/children)."""
    tree, frontier = [pid], [pid]
    while frontier:
        parent = frontier.pop()
        for children in Path(f"/proc/{parent}/task").glob("*/children"):
            with suppress(OSError):
                found = [int(child) for child in children.read_text().split()]
                tree += found
                frontier += found
    return tree


def tree_rss(pid: int, field: str = "VmRSS") -> dict[str, int]:
    """Bytes of ``field`` (VmRSS, or VmHWM for the peaks) per process of ``pid``'s tree, by name."""
    sizes: dict[str, int] = {}
    for member in process_tree(pid):
        with suppress(OSError):
            name = f"{Path(f'/proc/{member}/comm').read_text().strip()}[{member}]"
            sizes[name] = status_kib(member, field) * 1024
    return sizes


def listen_overflows() -> int:
    """The kernel's count of connections dropped on a full listen queue (TcpExt ListenOverflows):
    each such client retries its SYN after 1 s."""
    with suppress(OSError, ValueError):
        lines = [line.split() for line in Path("/proc/net/netstat").read_text().splitlines()]
        for names, values in zip(lines[::2], lines[1::2], strict=False):
            if names and names[0] == "TcpExt:" and "ListenOverflows" in names:
                return int(values[names.index("ListenOverflows")])
    return 0


# -- the database -------------------------------------------------------------------------------


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


# -- a measurement: the same for Lineside and the peer -----------------------------------------


async def measure(
    name: str, tokens: dict[str, str], port: int, pid: int, concurrency: int, database_url: str | None
) -> Outcome:
    """N devices online at ``port``; with ``database_url``, until all are activated there too.
    Memory is read over ``pid`` and its children."""
    devices = [Device(device_id, token) for token, device_id in tokens.items()]
    before, overflows = tree_rss(pid), listen_overflows()
    results = await bring_online(devices, port, concurrency)
    overflows = listen_overflows() - overflows
    activation_seconds = None
    if database_url is not None:
        activated_at = await wait_for_activations(database_url, len(results.latencies))
        activation_seconds = activated_at - results.started
    connected = tree_rss(pid)
    growth = {name: size - before.get(name, 0) for name, size in connected.items()}
    memory = Memory(
        sum(before.values()), sum(connected.values()), sum(tree_rss(pid, "VmHWM").values()), growth
    )
    await asyncio.gather(*(device.close() for device in devices))
    return Outcome(name, results, activation_seconds, memory, overflows)


def report(outcome: Outcome) -> None:
    results, memory, ok = outcome.results, outcome.memory, outcome.ok
    print(f"  {outcome.name}")
    print(f"    connected        {ok} ok, {results.refused} refused, {results.failed} failed")
    print(f"    connections/s    {outcome.connections_per_second:,.0f}  ({results.elapsed:.2f} s for all)")
    p50, p90, p99 = (outcome.quantile(share) * 1000 for share in (0.50, 0.90, 0.99))
    print(f"    connect p50/p90/p99  {p50:.1f} / {p90:.1f} / {p99:.1f} ms")
    if outcome.listen_overflows:
        print(f"    listen overflows {outcome.listen_overflows} (SYNs dropped, accept queue full; 1 s retry)")
    if outcome.activation_seconds is not None:
        print(
            f"    activations/s    {outcome.activations_per_second or 0:,.0f}"
            f"  (all activated {outcome.activation_seconds:.2f} s after the first CONNECT)"
        )
    print(
        f"    memory           {memory.before / 2**20:.0f} MiB idle, {memory.connected / 2**20:.0f} MiB"
        f" with {ok} connected, peak {memory.peak / 2**20:.0f} MiB"
    )
    shares = ""
    if len(memory.growth) > 1:
        parts = (f"{name} {size / max(ok, 1) / 1024:.1f}" for name, size in memory.growth.items())
        shares = f"  ({', '.join(parts)})"
    print(f"    per device       {outcome.kib_per_device:.1f} KiB{shares}")


def default_broker() -> str:
    """The broker ``lineside serve`` runs here by default (``LINESIDE_MQTT_BROKER=auto``)."""
    return chosen_broker(Settings(_env_file=None, mqtt_broker="auto"))


def report_ratios(lineside: Outcome, peer: Outcome, count: int, broker: str) -> None:
    activations = lineside.activations_per_second or 0.0
    share = activations / peer.connections_per_second
    which = "this one" if broker == default_broker() else f"{default_broker()} here"
    target = f"target >= {ACTIVATION_SHARE_TARGET:g} on the default broker: {which}"
    print(f"  ratio activations/s / peer connections/s   {share:.2f}  ({target})")
    memory_share = lineside.kib_per_device / peer.kib_per_device if peer.kib_per_device > 0 else float("nan")
    print(
        f"  ratio KiB per device                        {lineside.kib_per_device:.1f} KiB,"
        f" {memory_share:.1f}x the peer's {peer.kib_per_device:.1f}"
        f"  (target < {KIB_PER_DEVICE_TARGET:g} KiB at 10,000; {count:,} here)"
    )


# -- the servers --------------------------------------------------------------------------------


def wait_for_port(port: int) -> None:
    deadline = time.monotonic() + CONNECT_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)  # polling for the broker to listen, with a deadline
    raise SystemExit(f"the broker did not listen on {port}")


@contextmanager
def peer_mosquitto(directory: Path, tokens: dict[str, str]) -> Iterator[tuple[int, int]]:
    """A bare Mosquitto 2 on a free port with a password file of the devices: (pid, port)."""
    directory.mkdir(parents=True)
    passwords = directory / "passwords"
    passwords.write_text("".join(f"{device_id}:{token}\n" for token, device_id in tokens.items()))
    hashing = time.perf_counter()
    subprocess.run(["mosquitto_passwd", "-U", str(passwords)], check=True)  # salted hashes, in place
    hashing = time.perf_counter() - hashing
    port = free_port()
    config = directory / "mosquitto.conf"
    config.write_text(
        "\n".join(
            [
                # As root it would drop to the user 'mosquitto', who cannot read these files.
                f"user {pwd.getpwuid(os.geteuid()).pw_name}",
                "per_listener_settings false",
                "allow_anonymous false",
                f"password_file {passwords}",
                # As lineside serve configures its Mosquitto, so that the two compare.
                "persistence false",
                "log_dest stderr",
                "log_type error",
                "log_type warning",
                "connection_messages false",
                f"listener {port} {HOST}",
                "",
            ]
        )
    )
    print(f"  (peer: {len(tokens):,} passwords hashed by mosquitto_passwd -U in {hashing:.1f} s)")
    with (directory / "mosquitto.log").open("wb") as sink:
        process = subprocess.Popen(
            [PEER_MOSQUITTO, "-c", str(config)], stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_for_port(port)
        yield process.pid, port
    finally:
        process.terminate()
        try:
            process.wait(STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        show_log_problems("peer Mosquitto", directory / "mosquitto.log")


def show_log_problems(name: str, log: Path, keep: int = 12) -> None:
    """Errors and warnings a server logged during the run, the first few of them."""
    with suppress(OSError):
        lines = log.read_text(errors="replace").splitlines()
        problems = [line for line in lines if any(word in line for word in ("ERROR", "WARNING", "rror"))]
        # wait_for_port's probe connects and leaves without a CONNECT: amqtt warns once for it.
        probes = [line for line in problems if "no CONNECT received" in line]
        problems = [line for line in problems if line not in probes]
        if len(probes) > 1:
            print(f"  {name} logged {len(probes)} 'no CONNECT received' (one is the port probe's)")
        if problems:
            print(
                f"  {name} logged {len(problems)} error/warning lines; the first {min(keep, len(problems))}:"
            )
            for line in problems[:keep]:
                print(f"    | {line[:300]}")


def run_once(
    backend: str, broker: str, count: int, concurrency: int, postgres_url: str, log_level: str, fleet: int
) -> tuple[Outcome, Outcome]:
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="lineside-bench-")))
        if backend == "postgres":
            url = stack.enter_context(postgres_database(postgres_url))
        else:
            url = f"sqlite:///{workdir / 'bench.db'}"
        print(
            f"{backend}, broker {broker}: {count:,} devices of a fleet of {max(count, fleet):,},"
            f" {concurrency} connects in flight; load {os.getloadavg()[0]:.2f} at start"
        )
        # The whole fleet is defined; the first ``count`` of it come online (the rest stay defined).
        tokens = dict(itertools.islice(seed(url, workdir / "data", max(count, fleet)).items(), count))

        with peer_mosquitto(workdir / "peer", tokens) as (peer_pid, peer_port):
            peer = asyncio.run(
                measure("peer: bare Mosquitto 2", tokens, peer_port, peer_pid, concurrency, None)
            )
        report(peer)

        mqtt_port = free_port()
        extra = {"LINESIDE_MQTT_BROKER": broker, "LINESIDE_LOG_LEVEL": log_level}
        with running_server(
            url,
            workdir,
            1,
            free_port(),
            LINESIDE_MQTT_ENABLED="1",
            LINESIDE_MQTT_PORT=str(mqtt_port),
            **extra,
        ) as pid:
            wait_for_port(mqtt_port)
            name = f"lineside serve, {broker} broker"
            lineside = asyncio.run(measure(name, tokens, mqtt_port, pid, concurrency, url))
        report(lineside)
        report_ratios(lineside, peer, count, broker)
        show_log_problems("lineside serve", workdir / "server.log")
        return lineside, peer


def summary(rows: list[tuple[str, str, int, Outcome, Outcome]]) -> None:
    print()
    print(
        "backend  broker     devices | conn/s activ/s p50/p99 ms KiB/dev"
        " | peer: conn/s p50/p99 ms KiB/dev | ratio"
    )
    for backend, broker, count, lineside, peer in rows:
        share = (lineside.activations_per_second or 0.0) / peer.connections_per_second
        ours = f"{lineside.quantile(0.5) * 1000:.0f}/{lineside.quantile(0.99) * 1000:.0f}"
        theirs = f"{peer.quantile(0.5) * 1000:.0f}/{peer.quantile(0.99) * 1000:.0f}"
        print(
            f"{backend:<8} {broker:<10} {count:>7,} | {lineside.connections_per_second:>6,.0f}"
            f" {lineside.activations_per_second or 0:>7,.0f} {ours:>10} {lineside.kib_per_device:>7.1f}"
            f" | {peer.connections_per_second:>12,.0f} {theirs:>10} {peer.kib_per_device:>7.1f}"
            f" | {share:>5.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, action="append", help="devices (repeatable) [1000 and 10000]")
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument(
        "--broker", choices=(*BROKERS, "both"), default="both", help="lineside serve's [both]"
    )
    parser.add_argument("--concurrency", type=int, default=200, help="connects in flight [200]")
    parser.add_argument(
        "--fleet",
        type=int,
        default=0,
        help="devices defined in the database, of which --devices connect [--devices]",
    )
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    parser.add_argument(
        "--server-log-level",
        default="warning",
        help="LINESIDE_LOG_LEVEL of the server [warning]; info shows"
        " Mosquitto's own lines (the plugin's errors), and uvicorn's access log",
    )
    args = parser.parse_args()
    stop_cleanly_on_signals()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # 10,000 sockets here and in the server
    print_machine()
    print(f"Files:  soft limit {hard} (was {soft}), inherited by the server, its Mosquitto and the peer")
    print(f"Broker: lineside serve's default here (LINESIDE_MQTT_BROKER=auto) is {default_broker()}")
    if shutil.which("mosquitto_passwd") is None or not Path(PEER_MOSQUITTO).exists():
        raise SystemExit(f"the peer needs {PEER_MOSQUITTO} and mosquitto_passwd (apt-get install mosquitto)")
    brokers = BROKERS if args.broker == "both" else (args.broker,)
    rows: list[tuple[str, str, int, Outcome, Outcome]] = []
    try:
        for count in args.devices or [1000, 10000]:
            for broker in brokers:
                lineside, peer = run_once(
                    args.backend,
                    broker,
                    count,
                    args.concurrency,
                    args.postgres_url,
                    args.server_log_level,
                    args.fleet,
                )
                rows.append((args.backend, broker, count, lineside, peer))
    except KeyboardInterrupt:
        raise SystemExit("interrupted: servers stopped, temporary databases dropped") from None
    summary(rows)


if __name__ == "__main__":
    main()
