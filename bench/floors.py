"""Lineside beside its floors, in the same run on the same machine: how much of the hardware's
possible work each hot path achieves.

1. Device authentication. ``GET /device/v1/me`` of ``lineside serve`` against the same route
   of ``bench/floor_app.py``: a bare Starlette app that hashes the token with the same key and
   finds the device with one indexed query on the same database, nothing else. Both run under
   uvicorn with ``--workers`` processes, one after the other, driven by the same client
   (``device_auth.py``'s raw asyncio HTTP/1.1 client) with the same tokens. Printed: req/s,
   p50/p99 and server CPU per request of each, and Lineside's share of the floor's req/s
   (target: at least 0.5).
2. Batch define. ``define_batch`` of ``--count`` devices with tokens (the code behind
   ``POST /api/v1/device-batches``) against the raw insert of the same rows into Lineside's
   own migrated devices table (every index in place): the driver's ``executemany`` on
   SQLite, ``COPY`` on PostgreSQL, of row tuples built beforehand and not timed. Each in a
   fresh database. Printed: devices/s of each and Lineside's share (target: at least 0.5).

Reproduce (from the repository root):

    .venv/bin/python bench/floors.py                          # both backends
    .venv/bin/python bench/floors.py --backend sqlite --seconds 5 --count 20000
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from device_auth import (
    HOST,
    Measurement,
    free_port,
    measure,
    running_server,
    seed,
    stop_server,
    wait_until_healthy,
)
from scratch import (
    bench_parser,
    each_backend,
    postgres_database,
)

from lineside.adapters.db.device_repository import (
    _INSERT_COLUMNS as INSERT_COLUMNS,
)
from lineside.adapters.db.device_repository import (
    SqlDeviceRepository,
    _iso_time,
    _sqlite_time,
)
from lineside.bootstrap import SERVER_KEY_FILE, Application, bootstrap
from lineside.domain.device_specs import specs_from_serial_numbers
from lineside.domain.identifiers import new_id
from lineside.domain.lifecycle import DeviceState
from lineside.domain.models import CredentialType, Device
from lineside.domain.secret_tokens import SecretKind, generate_secret
from lineside.services.devices import define_batch
from lineside.services.organizations import authenticate_api_key, create_organization
from lineside.services.ports import NewDevice
from lineside.services.products import create_product
from lineside.settings import Settings

BENCH = Path(__file__).parent


@dataclass
class Served:
    name: str
    requests: int
    errors: int
    rate: float
    p50_ms: float
    p99_ms: float
    cpu_ms: float


def summarise(name: str, m: Measurement) -> Served:
    latencies = sorted(lat for r in m.clients for lat in r.latencies)
    ok, errors = sum(r.ok for r in m.clients), sum(r.errors for r in m.clients)
    elapsed = max(r.elapsed for r in m.clients)
    p50 = latencies[len(latencies) // 2] if latencies else float("nan")
    p99 = latencies[min(len(latencies) - 1, len(latencies) * 99 // 100)] if latencies else float("nan")
    return Served(name, ok, errors, ok / elapsed, p50 * 1000, p99 * 1000, m.server_cpu / max(ok, 1) * 1000)


# -- 1. device authentication ---------------------------------------------------------------


@contextmanager
def running_floor(database_url: str, data_dir: Path, workers: int, port: int, workdir: Path) -> Iterator[int]:
    """``bench/floor_app.py`` under uvicorn, as ``running_server`` runs Lineside."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("LINESIDE_")}
    env.update(FLOOR_DATABASE_URL=database_url, FLOOR_SERVER_KEY_FILE=str(data_dir / SERVER_KEY_FILE))
    command = [sys.executable, "-m", "uvicorn", "floor_app:app", "--app-dir", str(BENCH)]
    command += ["--host", HOST, "--port", str(port), "--workers", str(workers)]
    command += ["--log-level", "warning", "--no-access-log"]
    log = workdir / "floor.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command, env=env, cwd=workdir, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_until_healthy(f"http://{HOST}:{port}", process, log)
        yield process.pid
    finally:
        stop_server(process)


def device_auth(args: argparse.Namespace, backend: str) -> list[Served]:
    workdir = Path(tempfile.mkdtemp(prefix="lineside-bench-floors-"))
    try:
        with ExitStack() as stack:
            url = (
                stack.enter_context(postgres_database(args.postgres_url))
                if backend == "postgres"
                else f"sqlite:///{workdir / 'lineside.db'}"
            )
            print(f"... {backend}: seeding {args.devices:,} devices with tokens", flush=True)
            tokens = list(seed(url, workdir / "data", args.devices))
            served = []
            for name, server in (("floor (bare Starlette)", running_floor), ("Lineside", None)):
                port = free_port()
                if server is None:
                    running = running_server(url, workdir, args.workers, port)
                else:
                    running = server(url, workdir / "data", args.workers, port, workdir)
                with running as pid:
                    served.append(summarise(name, measure(args, port, tokens, pid)))
            return served
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


# -- 2. batch define --------------------------------------------------------------------------


@contextmanager
def fresh_application(backend: str, postgres_url: str) -> Iterator[Application]:
    workdir = Path(tempfile.mkdtemp(prefix="lineside-bench-floors-"))
    try:
        with ExitStack() as stack:
            url = (
                stack.enter_context(postgres_database(postgres_url))
                if backend == "postgres"
                else f"sqlite:///{workdir / 'lineside.db'}"
            )
            app = bootstrap(
                Settings(database_url=url, data_dir=workdir / "data", _env_file=None), migrate=True
            )
            stack.callback(app.close)
            yield app
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def lineside_batch(backend: str, args: argparse.Namespace) -> float:
    """Seconds of one define_batch call of ``--count`` devices with tokens."""
    with fresh_application(backend, args.postgres_url) as app:
        ctx = app.services
        principal = authenticate_api_key(ctx, create_organization(ctx, "bench").admin_key.secret)
        product = create_product(ctx, principal, name="bench", fields=[])
        specs = specs_from_serial_numbers(f"SN-{index:09d}" for index in range(args.count))
        start = time.perf_counter()
        define_batch(
            ctx, principal, product_id=product.id, specs=specs, issue_credentials=CredentialType.TOKEN
        )
        return time.perf_counter() - start


def raw_insert(backend: str, args: argparse.Namespace) -> float:
    """Seconds of inserting the same rows, built beforehand, with the driver alone."""
    with fresh_application(backend, args.postgres_url) as app:
        ctx = app.services
        principal = authenticate_api_key(ctx, create_organization(ctx, "bench").admin_key.secret)
        product = create_product(ctx, principal, name="bench", fields=[])
        rows = [
            _as_tuple(new, backend) for new in _rows(app, principal.organization.id, product.id, args.count)
        ]
        columns = ", ".join(INSERT_COLUMNS)
        with app.engine.connect() as connection:
            driver = connection.connection.driver_connection
            assert driver is not None
            start = time.perf_counter()
            with connection.begin():  # BEGIN IMMEDIATE on SQLite, as for every writer
                if backend == "postgres":
                    with (
                        driver.cursor() as cursor,
                        cursor.copy(f"COPY devices ({columns}) FROM STDIN") as copy,
                    ):
                        for row in rows:
                            copy.write_row(row)
                else:
                    marks = ", ".join("?" for _ in INSERT_COLUMNS)
                    driver.executemany(f"INSERT INTO devices ({columns}) VALUES ({marks})", rows)
            return time.perf_counter() - start


def _as_tuple(new: NewDevice, backend: str) -> tuple[Any, ...]:
    """The row as the driver takes it, in Lineside's column order (built before the clock)."""
    to_time = _iso_time if backend == "postgres" else _sqlite_time
    return SqlDeviceRepository._row(None, new, to_time)  # type: ignore[arg-type]


def _rows(app: Application, organization_id: str, product_id: str, count: int) -> Iterator[NewDevice]:
    now = app.services.clock()
    hasher = app.services.hasher
    for index in range(count):
        device = Device(
            id=new_id(),
            organization_id=organization_id,
            product_id=product_id,
            serial_number=f"SN-{index:09d}",
            state=DeviceState.DEFINED,
            created_at=now,
            timeline={"defined_at": now},
            token_issued_at=now,
        )
        yield NewDevice(device, token_hash=hasher.hash(generate_secret(SecretKind.DEVICE_TOKEN)))


# -- the run ----------------------------------------------------------------------------------


def print_served(backend: str, served: list[Served]) -> None:
    print(f"\n{backend}: GET /device/v1/me, {served[0].requests + served[0].errors:,} requests measured")
    print(f"{'server':<24} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'server CPU/req':>15} {'errors':>7}")
    for s in served:
        print(
            f"{s.name:<24} {s.rate:>8,.0f} {s.p50_ms:>7.1f} {s.p99_ms:>7.1f}"
            f" {s.cpu_ms:>12.2f} ms {s.errors:>7}"
        )
    floor, lineside = served
    print(
        f"Lineside / floor: {lineside.rate / floor.rate:.2f} of the req/s (target 0.5),"
        f" {floor.cpu_ms / lineside.cpu_ms:.2f} of the CPU efficiency"
    )


def print_batch(backend: str, count: int, lineside: float, floor: float) -> None:
    print(f"\n{backend}: {count:,} devices with tokens in one batch")
    print(f"  raw insert (driver only, rows prebuilt): {count / floor:>9,.0f} devices/s ({floor:.2f} s)")
    print(
        f"  Lineside define_batch:                    {count / lineside:>9,.0f} devices/s ({lineside:.2f} s)"
    )
    print(f"  Lineside / floor: {floor / lineside:.2f} (target 0.5)")


def parse_args() -> argparse.Namespace:
    parser = bench_parser(__doc__)
    parser.add_argument("--workers", type=int, default=2, help="server worker processes (each server)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per server")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before them")
    parser.add_argument("--concurrency", type=int, default=64, help="connections in flight")
    parser.add_argument("--clients", type=int, default=1, help="client processes")
    parser.add_argument("--devices", type=int, default=10_000, help="devices with tokens to authenticate")
    parser.add_argument("--count", type=int, default=100_000, help="devices in the batch")
    parser.add_argument("--only", choices=["auth", "batch"], help="run one of the two comparisons")
    args = parser.parse_args()
    args.client = "raw"
    return args


def main() -> None:
    args = parse_args()

    def compare(backend: str) -> None:
        if args.only in (None, "auth"):
            print_served(backend, device_auth(args, backend))
        if args.only in (None, "batch"):
            floor, lineside = raw_insert(backend, args), lineside_batch(backend, args)
            print_batch(backend, args.count, lineside, floor)

    each_backend(args, compare)


if __name__ == "__main__":
    main()
