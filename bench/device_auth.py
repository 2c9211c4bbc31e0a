"""Authenticated device requests per second: concurrent GET /device/v1/me against a real server.

What it measures: requests/s, p50 and p99 latency and errors of ``GET /device/v1/me``, each
request made with a random valid device token. That request means a token hash, one index
probe and a JSON answer. The server is ``python -m lineside serve --no-migrate --workers W``,
started by this script as a subprocess on 127.0.0.1 with a throwaway database and data
directory. Before starting it, the script migrates that database and seeds it with
``--devices`` devices with tokens through the service layer.

Load: ``--clients`` processes (default 1) share ``--concurrency`` keep-alive connections
(default 64). They run a warm-up of ``--warmup`` seconds, then are measured for ``--seconds``.
The client is ``--client raw`` (default): a minimal asyncio HTTP/1.1 client that costs about
0.05-0.1 ms of CPU per request. ``--client httpx`` uses ``httpx.AsyncClient``, which costs
3 ms per request at one connection and about 17 ms at 64 on this machine (httpcore scans
every pooled connection for every request). With it you measure httpx, not Lineside.
Server and clients share the machine's cores, so the script reports the CPU the server's
processes, the clients and everything else (PostgreSQL, other users) used in the measured
window. It also reports server CPU per request, which stays comparable on a busy machine.

Only 127.0.0.1 is contacted (httpx ignores proxy variables here). The script stops by
itself and ends the server's process group at the end, also on Ctrl-C, SIGTERM or errors.

Reproduce (from the repository root):

    .venv/bin/python bench/device_auth.py                           # SQLite, 2 workers, 10 s, 64 conns
    .venv/bin/python bench/device_auth.py --backend postgres --workers 2 --clients 2
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack, ExitStack, contextmanager, suppress
from dataclasses import dataclass
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import httpx
from scratch import DEFAULT_POSTGRES_URL, postgres_database, print_machine, stop_cleanly_on_signals

from lineside.bootstrap import bootstrap
from lineside.domain.device_specs import MAX_BATCH_SIZE, specs_from_serial_numbers
from lineside.domain.models import CredentialType
from lineside.services.devices import define_batch
from lineside.services.organizations import authenticate_api_key, create_organization
from lineside.services.products import create_product
from lineside.settings import Settings

HOST = "127.0.0.1"
STARTUP_DEADLINE_SECONDS = 60.0
STOP_GRACE_SECONDS = 10.0
ME = "/device/v1/me"


@dataclass
class ClientResult:
    ok: int
    errors: int
    latencies: list[float]
    elapsed: float
    cpu_seconds: float


# -- setup --------------------------------------------------------------------------------


def seed(
    database_url: str, data_dir: Path, count: int, credentials: CredentialType | None = CredentialType.TOKEN
) -> dict[str, str]:
    """Migrate, then define ``count`` devices with tokens (or ``credentials``), in batches of
    the most one batch holds: {token: device id}, in the order defined (empty without
    tokens)."""
    app = bootstrap(Settings(database_url=database_url, data_dir=data_dir), migrate=True)
    tokens: dict[str, str] = {}
    try:
        ctx = app.services
        principal = authenticate_api_key(ctx, create_organization(ctx, "bench").admin_key.secret)
        product = create_product(ctx, principal, name="bench", fields=[])
        for start in range(0, count, MAX_BATCH_SIZE):
            serials = (f"SN-{index:09d}" for index in range(start, min(count, start + MAX_BATCH_SIZE)))
            batch = define_batch(
                ctx,
                principal,
                product_id=product.id,
                specs=specs_from_serial_numbers(serials),
                issue_credentials=credentials,
            )
            tokens |= {
                d.credential.secret: d.device.id
                for d in batch.devices
                if d.credential and d.credential.secret
            }
    finally:
        app.close()
    return tokens


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


# -- the server -----------------------------------------------------------------------------


def server_environment(database_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("LINESIDE_")}
    env.update(
        LINESIDE_DATABASE_URL=database_url,
        LINESIDE_DATA_DIR=str(data_dir),
        LINESIDE_LOG_LEVEL="warning",
        LINESIDE_HOST=HOST,
        # No embedded MQTT broker unless a bench asks for one (1883 may belong to another).
        LINESIDE_MQTT_ENABLED="0",
    )
    env.update(extra)
    return env


def stop_server(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's own process group (uvicorn and its workers), SIGKILL if slow."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            continue
        # The group may outlive its leader for a moment; make sure no worker is left.
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        return


def wait_until_healthy(base_url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_DEADLINE_SECONDS
    with httpx.Client(base_url=base_url, trust_env=False, timeout=2.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SystemExit(f"the server exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            with suppress(httpx.HTTPError):
                if client.get("/healthz").status_code == 200:
                    return
            time.sleep(0.2)  # polling for the server to come up, with a deadline
    raise SystemExit(f"the server did not answer /healthz in {STARTUP_DEADLINE_SECONDS:.0f} s")


@contextmanager
def running_server(
    database_url: str, workdir: Path, workers: int, port: int, **extra_env: str
) -> Iterator[int]:
    """``lineside serve`` in its own session; yields its pid, stops its whole group after."""
    log = workdir / "server.log"
    command = [sys.executable, "-m", "lineside", "serve", "--no-migrate"]
    command += ["--workers", str(workers), "--host", HOST, "--port", str(port)]
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command,
            env=server_environment(database_url, workdir / "data", **extra_env),
            cwd=workdir,  # no stray .env file from the caller's directory
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until_healthy(f"http://{HOST}:{port}", process, log)
        yield process.pid
    finally:
        stop_server(process)


# -- CPU accounting from /proc ----------------------------------------------------------------


def process_tree_cpu(root: int) -> float:
    """CPU seconds (user + system) of ``root`` and its live descendants."""
    ticks = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with suppress(OSError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            parents[int(entry.name)] = int(fields[1])
            cpu[int(entry.name)] = (int(fields[11]) + int(fields[12])) / ticks
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        tree.update(children)
        frontier.extend(children)
    return sum(cpu.get(pid, 0.0) for pid in tree)


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent not idle since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


# -- the clients ----------------------------------------------------------------------------


def record(result: ClientResult, started: float, status: int) -> None:
    result.latencies.append(time.perf_counter() - started)
    if status == 200:
        result.ok += 1
    else:
        result.errors += 1


async def httpx_loop(
    client: httpx.AsyncClient, tokens: list[str], deadline: float, result: ClientResult
) -> None:
    """One connection's loop through httpx: a random token per request until the deadline."""
    while time.perf_counter() < deadline:
        headers = {"authorization": f"Bearer {random.choice(tokens)}"}
        started = time.perf_counter()
        try:
            response = await client.get(ME, headers=headers)
        except httpx.HTTPError:
            result.errors += 1
            continue
        record(result, started, response.status_code)


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """Status and body of one HTTP/1.1 response with a Content-Length (all uvicorn sends here)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, await reader.readexactly(length)


async def raw_loop(port: int, tokens: list[str], deadline: float, result: ClientResult) -> None:
    """One keep-alive connection speaking just enough HTTP/1.1: a few dozen us per request."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        while time.perf_counter() < deadline:
            token = random.choice(tokens)
            started = time.perf_counter()
            writer.write(
                f"GET {ME} HTTP/1.1\r\nhost: {HOST}\r\nauthorization: Bearer {token}\r\n\r\n".encode()
            )
            try:
                status, _ = await read_response(reader)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                result.errors += 1
                writer.close()
                reader, writer = await asyncio.open_connection(HOST, port)
                continue
            record(result, started, status)
    finally:
        writer.close()


async def drive(kind: str, port: int, tokens: list[str], concurrency: int, seconds: float) -> ClientResult:
    """``concurrency`` connections in flight for ``seconds``, through httpx or the raw client."""
    result = ClientResult(0, 0, [], 0.0, 0.0)
    async with AsyncExitStack() as stack:
        if kind == "httpx":
            limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
            client = httpx.AsyncClient(
                base_url=f"http://{HOST}:{port}", limits=limits, trust_env=False, timeout=30.0
            )
            await stack.enter_async_context(client)
        cpu, start = time.process_time(), time.perf_counter()
        deadline = start + seconds
        if kind == "httpx":
            loops = [httpx_loop(client, tokens, deadline, result) for _ in range(concurrency)]
        else:
            loops = [raw_loop(port, tokens, deadline, result) for _ in range(concurrency)]
        await asyncio.gather(*loops)
        result.elapsed = time.perf_counter() - start
        result.cpu_seconds = time.process_time() - cpu
    return result


def client_process(
    kind: str,
    port: int,
    tokens: list[str],
    concurrency: int,
    durations: tuple[float, float],
    barrier: Barrier,
    results: Queue[dict[str, Any]],
) -> None:
    """Warm up, wait for every client, then measure: runs in a client process."""
    warmup, seconds = durations
    asyncio.run(drive(kind, port, tokens, concurrency, warmup))
    barrier.wait()
    results.put(vars(asyncio.run(drive(kind, port, tokens, concurrency, seconds))))


def check_identities(base_url: str, tokens: dict[str, str]) -> None:
    """A few tokens answer with their own device, and a wrong one is refused."""
    with httpx.Client(base_url=base_url, trust_env=False, timeout=10.0) as client:
        for token in random.sample(sorted(tokens), k=min(20, len(tokens))):
            answer = client.get(ME, headers={"authorization": f"Bearer {token}"})
            if answer.status_code != 200 or answer.json()["id"] != tokens[token]:
                raise SystemExit(f"GET {ME} answered {answer.status_code} {answer.text[:200]}")
        wrong = client.get(ME, headers={"authorization": "Bearer lsd_not-a-real-token"})
        if wrong.status_code != 401:
            raise SystemExit(f"GET {ME} with a wrong token answered {wrong.status_code}, not 401")


# -- the run --------------------------------------------------------------------------------


@dataclass
class Measurement:
    clients: list[ClientResult]
    window: float
    server_cpu: float
    machine_cpu: float


def connection_shares(concurrency: int, clients: int) -> list[int]:
    return [concurrency // clients + (i < concurrency % clients) for i in range(clients)]


def measure(args: argparse.Namespace, port: int, tokens: list[str], server_pid: int) -> Measurement:
    spawn = multiprocessing.get_context("spawn")
    barrier = spawn.Barrier(args.clients + 1)
    queue: Queue[dict[str, Any]] = spawn.Queue()
    durations = (args.warmup, args.seconds)
    clients = [
        spawn.Process(
            target=client_process, args=(args.client, port, tokens, share, durations, barrier, queue)
        )
        for share in connection_shares(args.concurrency, args.clients)
    ]
    try:
        for client in clients:
            client.start()
        barrier.wait(timeout=STARTUP_DEADLINE_SECONDS + args.warmup)
        server_cpu, machine_cpu, start = (
            process_tree_cpu(server_pid),
            machine_busy_seconds(),
            time.monotonic(),
        )
        results = [ClientResult(**queue.get(timeout=args.seconds + 60)) for _ in clients]
        window = time.monotonic() - start
        server_cpu = process_tree_cpu(server_pid) - server_cpu
        machine_cpu = machine_busy_seconds() - machine_cpu
    finally:
        for client in clients:
            if client.is_alive():
                client.terminate()
            client.join()
    return Measurement(results, window, server_cpu, machine_cpu)


def report(args: argparse.Namespace, m: Measurement) -> None:
    latencies = sorted(lat for r in m.clients for lat in r.latencies)
    ok, errors = sum(r.ok for r in m.clients), sum(r.errors for r in m.clients)
    elapsed = max(r.elapsed for r in m.clients)
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [float("nan")] * 99
    print("backend   workers clients conns  requests errors    req/s  p50 ms  p99 ms")
    print(
        f"{args.backend:<9} {args.workers:>7} {args.clients:>7} {args.concurrency:>5} {ok:>9,} {errors:>6}"
        f" {ok / elapsed:>8,.0f} {cuts[49] * 1000:>7.1f} {cuts[98] * 1000:>7.1f}"
    )
    client_cpu = sum(r.cpu_seconds for r in m.clients)
    other = max(0.0, m.machine_cpu - m.server_cpu - client_cpu)
    print(
        f"CPU in the {m.window:.1f} s window (of {(os.cpu_count() or 1) * 100}%):"
        f" server {m.server_cpu / m.window:.0%}, clients {client_cpu / m.window:.0%},"
        f" everything else {other / m.window:.0%} (the database server, other users)"
    )
    # Independent of how busy the machine was: what one request costs the server's processes.
    print(f"Server CPU per request: {m.server_cpu / max(ok, 1) * 1000:.2f} ms (Lineside processes only)")


def print_run(args: argparse.Namespace) -> None:
    print(
        f"Run:    {args.backend}, {args.workers} server workers, {args.clients} {args.client}"
        f" client process(es), {args.concurrency} connections,"
        f" {args.warmup:g} s warm-up + {args.seconds:g} s measured"
    )


def run(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="lineside-bench-"))
    try:
        with ExitStack() as stack:
            if args.backend == "postgres":
                url = stack.enter_context(postgres_database(args.postgres_url))
            else:
                url = f"sqlite:///{workdir / 'lineside.db'}"
            print(f"... seeding {args.devices:,} devices with tokens", flush=True)
            tokens = seed(url, workdir / "data", args.devices)
            port = args.port or free_port()
            server_pid = stack.enter_context(running_server(url, workdir, args.workers, port))
            base_url = f"http://{HOST}:{port}"
            check_identities(base_url, tokens)
            print(f"... server up on {base_url}; measuring", flush=True)
            measurement = measure(args, port, list(tokens), server_pid)
        print()
        report(args, measurement)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--workers", type=int, default=2, help="server worker processes")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured duration")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured warm-up before it")
    parser.add_argument("--concurrency", type=int, default=64, help="connections in flight, all clients")
    parser.add_argument("--clients", type=int, default=1, help="client processes sharing the connections")
    parser.add_argument(
        "--client",
        choices=["raw", "httpx"],
        default="raw",
        help="raw: a minimal asyncio HTTP/1.1 client; httpx: httpx.AsyncClient (see above)",
    )
    parser.add_argument("--devices", type=int, default=1000, help="devices with tokens to seed")
    parser.add_argument("--port", type=int, default=0, help="server port on 127.0.0.1 (0: a free one)")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL, help="a server to make a database on")
    args = parser.parse_args()
    if not 1 <= args.clients <= args.concurrency:
        parser.error("--clients must be between 1 and --concurrency")
    return args


def main() -> None:
    args = parse_args()
    stop_cleanly_on_signals()
    print_machine()
    print_run(args)
    try:
        run(args)
    except KeyboardInterrupt:
        raise SystemExit("interrupted: the server is stopped and the temporary database dropped") from None


if __name__ == "__main__":
    main()
