"""How fast one batch of devices with tokens is defined, and how much memory it takes.

What it measures: one call of ``lineside.services.devices.define_batch`` for ``--count``
devices (default 100,000) with ``issue_credentials=CredentialType.TOKEN``. That is the code
path behind ``POST /api/v1/device-batches`` and ``lineside devices define``. Only the call is
timed: wall seconds, devices/s, and the CPU seconds of this process (on PostgreSQL the
server's work is not in them). The call is split into phases by timing wrappers around
the service's own functions: serial lookup (``_taken_serials``), validation
(``batch_problems``), insert (``add_many``), commit, and "build" (everything else: ids,
tokens, hashes, result objects).

Memory is measured in a second, untimed call on a fresh product, because tracemalloc makes
the call about 3 times slower. That call reports the tracemalloc peak of the allocations it
made. The max RSS column is the process's ru_maxrss after the timed call. Each backend runs
in a fresh process, so the two backends' figures stay apart.

Afterwards it checks that the database holds exactly ``count`` devices with tokens for the
product, and that one issued token authenticates as its device.

Reproduce (from the repository root):

    .venv/bin/python bench/define_devices.py                        # both backends
    .venv/bin/python bench/define_devices.py --backend sqlite --count 20000
    .venv/bin/python bench/define_devices.py --postgres-url postgresql+psycopg://postgres@127.0.0.1/postgres

SQLite lives in a temporary directory. On PostgreSQL the script creates a temporary
database ``lineside_bench_<hex>`` and drops it at the end.
"""

from __future__ import annotations

import argparse
import gc
import math
import multiprocessing
import os
import platform
import resource
import secrets
import shutil
import sqlite3
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from scratch import (
    PhaseClock,
    backends_of,
    bench_parser,
    cpu_model,
    phase_timing,
    postgres_database,
    stop_cleanly_on_signals,
)
from sqlalchemy import text

from lineside.adapters.db.device_repository import SqlDeviceRepository
from lineside.adapters.db.unit_of_work import SqlUnitOfWork
from lineside.bootstrap import Application, bootstrap
from lineside.domain.device_specs import DeviceSpec, specs_from_serial_numbers
from lineside.domain.models import CredentialType, Principal
from lineside.services import devices as device_service
from lineside.services.credentials import authenticate_device
from lineside.services.devices import DefinedBatch
from lineside.services.organizations import authenticate_api_key, create_organization
from lineside.services.products import create_product
from lineside.settings import Settings

PHASES = ("lookup", "validate", "build", "insert", "commit")
MIB = 1024 * 1024


@dataclass
class Result:
    backend: str
    devices: int
    seconds: float
    cpu_seconds: float
    phases: dict[str, float]
    tracemalloc_peak_mib: float
    max_rss_mib: float
    server: str
    load_before: float
    load_after: float

    @property
    def rate(self) -> float:
        return self.devices / self.seconds


# What define_batch calls, timed as its phases.
PHASE_TARGETS = [
    (device_service, "_taken_serials", "lookup"),
    (device_service, "batch_problems", "validate"),
    (SqlDeviceRepository, "add_many", "insert"),
    (SqlUnitOfWork, "commit", "commit"),
]


@contextmanager
def application(backend: str, postgres_url: str) -> Iterator[Application]:
    """A migrated application on a throwaway database and data directory."""
    workdir = Path(tempfile.mkdtemp(prefix="lineside-bench-"))
    try:
        with ExitStack() as stack:
            if backend == "postgres":
                url = stack.enter_context(postgres_database(postgres_url))
            else:
                url = f"sqlite:///{workdir / 'lineside.db'}"
            app = bootstrap(Settings(database_url=url, data_dir=workdir / "data"), migrate=True)
            stack.callback(app.close)
            yield app
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def factory_principal(app: Application) -> Principal:
    created = create_organization(app.services, "bench")
    return authenticate_api_key(app.services, created.admin_key.secret)


def prepare(app: Application, principal: Principal, count: int) -> tuple[str, list[DeviceSpec]]:
    """A new product and ``count`` serial numbers for it (not part of the measured call)."""
    product = create_product(app.services, principal, name=f"bench-{secrets.token_hex(4)}", fields=[])
    specs = specs_from_serial_numbers(f"SN-{index:09d}" for index in range(count))
    gc.collect()
    return product.id, specs


def define(app: Application, principal: Principal, product_id: str, specs: list[DeviceSpec]) -> DefinedBatch:
    """The measured call: the service function the API and the CLI call."""
    return device_service.define_batch(
        app.services,
        principal,
        product_id=product_id,
        specs=specs,
        issue_credentials=CredentialType.TOKEN,
    )


def verify(app: Application, batch: DefinedBatch, product_id: str, count: int) -> None:
    """Exactly ``count`` devices with tokens were stored, and an issued token works."""
    query = text("SELECT count(*) FROM devices WHERE product_id = :p AND token_hash IS NOT NULL")
    with app.engine.connect() as connection:
        stored = connection.execute(query, {"p": product_id}).scalar_one()
    if stored != count or len(batch.devices) != count:
        raise SystemExit(f"expected {count} devices, stored {stored}, returned {len(batch.devices)}")
    sample = batch.devices[secrets.randbelow(count)]
    assert sample.credential is not None and sample.credential.secret is not None
    if authenticate_device(app.services, sample.credential.secret).id != sample.device.id:
        raise SystemExit("an issued token did not authenticate as its device")


def timed_call(app: Application, principal: Principal, count: int) -> tuple[float, float, PhaseClock]:
    product_id, specs = prepare(app, principal, count)
    clock = PhaseClock()
    with phase_timing(clock, PHASE_TARGETS):
        wall, cpu = time.perf_counter(), time.process_time()
        batch = define(app, principal, product_id, specs)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    verify(app, batch, product_id, count)
    return wall, cpu, clock


def traced_peak(app: Application, principal: Principal, count: int) -> float:
    """The tracemalloc peak (MiB) of one more call, made and verified untimed."""
    product_id, specs = prepare(app, principal, count)
    tracemalloc.start()
    try:
        batch = define(app, principal, product_id, specs)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    verify(app, batch, product_id, count)
    return peak / MIB


def server_version(app: Application) -> str:
    if app.engine.dialect.name == "sqlite":
        return f"SQLite {sqlite3.sqlite_version}"
    with app.engine.connect() as connection:
        version = str(connection.execute(text("SHOW server_version")).scalar_one())
        return f"PostgreSQL {version.split(maxsplit=1)[0]}"


def run_backend(backend: str, count: int, postgres_url: str, measure_memory: bool) -> dict[str, Any]:
    """Everything for one backend; runs in its own process so ru_maxrss is its own."""
    with application(backend, postgres_url) as app:
        principal = factory_principal(app)
        load_before = os.getloadavg()[0]
        wall, cpu, clock = timed_call(app, principal, count)
        load_after = os.getloadavg()[0]
        max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        peak = traced_peak(app, principal, count) if measure_memory else float("nan")
        phases = {name: clock.seconds.get(name, 0.0) for name in PHASES if name != "build"}
        phases["build"] = wall - sum(phases.values())
        result = Result(
            backend, count, wall, cpu, phases, peak, max_rss, server_version(app), load_before, load_after
        )
    return asdict(result)


def print_machine() -> None:
    print(f"CPU:    {cpu_model()}, {os.cpu_count()} cores ({len(os.sched_getaffinity(0))} usable)")
    print(f"Python: {platform.python_version()} ({platform.python_implementation()}), {platform.platform()}")
    print(f"Load:   {os.getloadavg()[0]:.2f} (1-minute load average at start)")


def print_results(results: list[Result]) -> None:
    header = f"{'backend':<9} {'devices':>8} {'seconds':>8} {'devices/s':>10} {'cpu s':>6}"
    header += f" {'tracemalloc peak':>16} {'max RSS':>8}  load  server"
    print(header)
    for r in results:
        peak = "-" if math.isnan(r.tracemalloc_peak_mib) else f"{r.tracemalloc_peak_mib:.0f} MiB"
        print(
            f"{r.backend:<9} {r.devices:>8,} {r.seconds:>8.2f} {r.rate:>10,.0f} {r.cpu_seconds:>6.2f}"
            f" {peak:>16} {r.max_rss_mib:>4.0f} MiB"
            f"  {r.load_before:.1f}-{r.load_after:.1f}  {r.server}"
        )
    print("\nshare of the call (seconds):")
    print(f"{'backend':<9} " + " ".join(f"{name:>15}" for name in PHASES))
    for r in results:
        cells = [f"{r.phases[name]:6.2f} ({r.phases[name] / r.seconds:4.0%})" for name in PHASES]
        print(f"{r.backend:<9} " + " ".join(f"{cell:>15}" for cell in cells))


def parse_args() -> argparse.Namespace:
    parser = bench_parser(__doc__)
    parser.add_argument("--count", type=int, default=100_000, help="devices in the batch")
    parser.add_argument(
        "--no-memory", action="store_true", help="skip the second, tracemalloc-traced call (faster)"
    )
    return parser.parse_args()


def measure_all(args: argparse.Namespace) -> list[Result]:
    backends = backends_of(args)
    results = []
    spawn = multiprocessing.get_context("spawn")
    for backend in backends:
        print(f"... {backend}: defining {args.count:,} devices with tokens", flush=True)
        with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
            future = pool.submit(run_backend, backend, args.count, args.postgres_url, not args.no_memory)
            results.append(Result(**future.result()))
    return results


def main() -> None:
    args = parse_args()
    stop_cleanly_on_signals()
    print_machine()
    try:
        results = measure_all(args)
    except KeyboardInterrupt:
        # The backend's own process got the same Ctrl-C and drops its database on the way out.
        raise SystemExit("interrupted") from None
    print()
    print_results(results)


if __name__ == "__main__":
    main()
