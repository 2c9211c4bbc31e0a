"""The offline factory station (issue 17): DUT cycles/s at a station, and ledger sync into the server.

Two figures, each beside a floor measured in the same run on the same machine:

(a) line: K fixtures (``lineside factory simulate``'s line, the same code as
    ``bench/factory_line.py``) take DUTs through enroll -> test -> bless against a real
    ``lineside station run BUNDLE`` with no server reachable, then the same simulation against
    the server itself (``lineside serve``, SQLite, the same workers). Printed: cycles/s at each,
    their ratio, p50/p99 per step, and the station's peak RSS (VmHWM of its process tree).
    Target: >= 300 cycles/s with 32 fixtures (the server's own line target).

(b) sync: a station's own home is made from the bundle (``read_bundle`` and ``open_station``,
    as ``lineside station run`` makes it: its SQLite database, seeded under the server's ids),
    and services.station_line (the code behind the station's routes) writes a ledger of N
    entries there (enroll, test run, bless per unit; 1 unit in 20 fails its test). Then the
    station's own sync (``entrypoints.station.sync.sync_ledger``, the code of ``lineside
    station sync``: chunks of 1,000, two in flight, each marked synced as the server acknowledges it) uploads
    it to a fresh ``lineside serve``. Timed: the sync alone. The floor: the driver's raw
    executemany of N test_runs rows into the same database, one transaction, in the same run
    (what the database itself takes; the replay writes devices, test runs, state changes,
    events and the station's head besides, so a ratio near 1 is not expected). Target on
    PostgreSQL: >= 5,000 entries/s.

The server's database and data directory are throwaway (a SQLite file or a fresh PostgreSQL
database, see scratch.py).

Reproduce (from the repository root):

    .venv/bin/python bench/station.py                               # (a) and (b) on both databases
    .venv/bin/python bench/station.py --part sync --backend postgres --entries 20000
    .venv/bin/python bench/station.py --part sync --entries 600 --backend sqlite   # a quick look
    .venv/bin/python bench/station.py --part sync --backend postgres --fleet 1000000  # at fleet size
"""

from __future__ import annotations

import argparse
import json
import secrets
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

import httpx
from device_auth import (
    HOST,
    free_port,
    process_tree_cpu,
    running_server,
    seed,
    server_environment,
    stop_server,
    wait_until_healthy,
)
from scratch import bench_parser, each_backend, postgres_database, print_machine, stop_cleanly_on_signals
from sqlalchemy import create_engine, insert, select

from lineside.adapters.db import tables as t
from lineside.bootstrap import bootstrap
from lineside.domain.identifiers import new_ids
from lineside.domain.models import Scope
from lineside.domain.stations import LedgerEntry
from lineside.entrypoints.cli.factory_client import FactoryClient
from lineside.entrypoints.cli.factory_simulation import STEPS, LinePlan, LineReport, run_line
from lineside.entrypoints.station.bundle import StationBundle, read_bundle
from lineside.entrypoints.station.home import open_station
from lineside.entrypoints.station.sync import CHUNK, StationLink, entry_document, sync_ledger
from lineside.services import station_line
from lineside.services.context import ServiceContext
from lineside.services.factory_tokens import create_factory_token
from lineside.services.organizations import authenticate_api_key, create_api_key, create_organization
from lineside.services.products import create_product
from lineside.services.stations import StationRequest, create_station
from lineside.settings import Settings

TARGET_SYNC_ENTRIES_PER_SECOND = 5000.0
TARGET_CYCLES_PER_SECOND = 300.0
FAIL_EVERY = 20  # one unit in 20 fails its test (5%, as bench/factory_line.py)
# What a station needs of the server to run the line offline (in foreign-key order).
_COPIED_TABLES = ("organizations", "api_keys", "products", "device_groups", "factory_enrollment_tokens")


@dataclass(frozen=True)
class Delegation:
    """A station created on the server, with what its fixtures send."""

    bundle: dict[str, Any]
    fixture_key: str
    enrollment_token: str

    @property
    def station_id(self) -> str:
        return str(self.bundle["station"]["id"])


@dataclass
class SyncMeasurement:
    backend: str
    entries: int
    units: int
    build_seconds: float
    sync_seconds: float
    server_cpu: float
    applied: int
    floor_rows: int
    floor_seconds: float

    @property
    def rate(self) -> float:
        return self.applied / self.sync_seconds

    @property
    def floor_rate(self) -> float:
        return self.floor_rows / self.floor_seconds


def settings(database_url: str, data_dir: Path) -> Settings:
    return Settings(database_url=database_url, data_dir=data_dir, _env_file=None)


def delegate(database_url: str, data_dir: Path, budget: int) -> Delegation:
    """On the server: migrate; an organization, a factory key, a product, a factory token and
    a station of ``budget`` devices for 14 days."""
    app = bootstrap(settings(database_url, data_dir), migrate=True)
    try:
        ctx = app.services
        admin = authenticate_api_key(ctx, create_organization(ctx, "bench factory").admin_key.secret)
        key = create_api_key(ctx, admin, name="line", scopes=frozenset({Scope.FACTORY})).secret
        product = create_product(ctx, admin, name="bench product", fields=[])
        token = create_factory_token(ctx, admin, product_id=product.id, name="bench").secret
        request = StationRequest(
            name="bench station", budget=budget, valid_days=14, enrollment_token=token, fixture_api_key=key
        )
        made = create_station(ctx, admin, product.id, request)
    finally:
        app.close()
    return Delegation(made.bundle, key, token)


@contextmanager
def station_home(workdir: Path, delegation: Delegation) -> Iterator[tuple[ServiceContext, StationBundle]]:
    """The station's own home from its bundle (written 0600, read by read_bundle, migrated and
    seeded by open_station), as ``lineside station run`` makes it."""
    path = workdir / "station.json"
    path.write_text(json.dumps(delegation.bundle))
    path.chmod(0o600)
    bundle = read_bundle(path)
    application = open_station(bundle, workdir / "station-data")
    try:
        yield application.services, bundle
    finally:
        application.close()


def build_ledger(
    ctx: ServiceContext, post: station_line.StationPost, delegation: Delegation, entries: int
) -> int:
    """Units through the station's line until the ledger holds ``entries`` entries; the units."""
    fixtures = authenticate_api_key(ctx, delegation.fixture_key)
    written, units = 0, 0
    while written < entries:
        units += 1
        hardware_id = secrets.token_hex(8)
        dut = station_line.enroll(
            ctx, post, delegation.enrollment_token, hardware_id=hardware_id, serial_number=None
        )
        written += 1
        if written >= entries:
            break
        passed = units % FAIL_EVERY != 0
        station_line.record_test_run(
            ctx,
            post,
            fixtures,
            dut.device.id,
            passed=passed,
            measurements={"rssi_dbm": -40 - units % 30, "current_ma": 80 + units % 7},
            fixture=f"fixture-{units % 32:02d}",
            operator="bench",
        )
        written += 1
        if written >= entries:
            break
        station_line.bless(ctx, post, fixtures, dut.device.id)
        written += 1
    return units


def ledger_of(ctx: ServiceContext) -> list[LedgerEntry]:
    with ctx.unit_of_work(write=False) as uow:
        return list(uow.station_ledger.entries(0, 10**9))


def upload(base_url: str, delegation: Delegation, ledger: list[LedgerEntry], chunk: int) -> int:
    """The ledger to the server in order, ``chunk`` entries a request; the entries applied."""
    applied = 0
    path = f"/api/v1/stations/{delegation.station_id}/ledger"
    headers = {"authorization": f"Bearer {delegation.fixture_key}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=600, trust_env=False) as http:
        for start in range(0, len(ledger), chunk):
            body = {"entries": [entry_document(entry) for entry in ledger[start : start + chunk]]}
            response = http.post(path, json=body)
            if response.status_code != 200:
                raise SystemExit(f"sync refused at chunk {start}: {response.status_code} {response.text}")
            applied += int(response.json()["applied"])
    return applied


def raw_floor(database_url: str, rows: int) -> float:
    """Seconds for the driver's executemany of ``rows`` test_runs rows (copies of one the sync
    wrote, fresh ids), one transaction: what the database itself takes for that many rows."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            template = connection.execute(select(t.test_runs).limit(1)).mappings().first()
        assert template is not None, "the sync made no test runs"
        sample = [{**template, "id": identifier} for identifier in new_ids(rows)]
        start = time.perf_counter()
        with engine.begin() as connection:
            connection.execute(insert(t.test_runs), sample)
        return time.perf_counter() - start
    finally:
        engine.dispose()


def sync_backend(args: argparse.Namespace, backend: str) -> SyncMeasurement:
    workdir = Path(tempfile.mkdtemp(prefix="lineside-bench-station-"))
    try:
        with ExitStack() as stack:
            if backend == "postgres":
                url = stack.enter_context(postgres_database(args.postgres_url))
            else:
                url = f"sqlite:///{workdir / 'lineside.db'}"
            if args.fleet:
                started = time.perf_counter()
                seed(url, workdir / "data", args.fleet, credentials=None)
                seconds = time.perf_counter() - started
                print(f"... {backend}: a fleet of {args.fleet:,} devices in {seconds:.0f} s")
            delegation = delegate(url, workdir / "data", budget=args.entries)
            started = time.perf_counter()
            station, bundle = stack.enter_context(station_home(workdir, delegation))
            units = build_ledger(station, bundle.post, delegation, args.entries)
            ledger = ledger_of(station)
            build_seconds = time.perf_counter() - started
            print(
                f"... {backend}: a ledger of {len(ledger):,} entries ({units:,} units)"
                f" in {build_seconds:.1f} s"
            )
            port = args.port or free_port()
            base_url = f"http://{HOST}:{port}"
            link = StationLink(base_url, delegation.station_id, delegation.fixture_key)
            with running_server(url, workdir, args.workers, port) as server_pid:
                cpu, start = process_tree_cpu(server_pid), time.perf_counter()
                # The station's own sync (``lineside station sync``): chunks of 1,000, each marked
                # synced on the station as the server acknowledges it.
                outcome = sync_ledger(station, link)
                sync_seconds = time.perf_counter() - start
                server_cpu = process_tree_cpu(server_pid) - cpu
                if outcome.uploaded != len(ledger) or outcome.head_sequence != ledger[-1].sequence:
                    raise SystemExit(f"{backend}: the sync delivered {outcome} of {len(ledger)} entries")
                # Idempotence, as the issue asks: the same entries again change nothing.
                if again := upload(base_url, delegation, ledger[:CHUNK], CHUNK):
                    raise SystemExit(f"{backend}: a repeated upload applied {again} entries (must be 0)")
            floor_seconds = raw_floor(url, len(ledger))
        return SyncMeasurement(
            backend,
            len(ledger),
            units,
            build_seconds,
            sync_seconds,
            server_cpu,
            outcome.uploaded,
            len(ledger),
            floor_seconds,
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


# -- (a) the line at the station, beside the line at the server ---------------------------


@dataclass
class LineMeasurement:
    where: str  # "station" or "server"
    report: LineReport
    cpu: float  # seconds of the serving process tree in the measured window
    window: float
    peak_rss_mib: float


def tree_pids(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
    tree, frontier = [root], [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        tree += children
        frontier += children
    return tree


def peak_rss_mib(root: int) -> float:
    """VmHWM (the kernel's peak resident set) summed over ``root``'s live process tree."""
    total_kib = 0
    for pid in tree_pids(root):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total_kib += int(line.split()[1])
        except OSError:
            continue
    return total_kib / 1024


@contextmanager
def running_station(bundle: Path, workdir: Path, port: int, dead_server: str) -> Iterator[int]:
    """``lineside station run BUNDLE`` in its own session, with no server it could reach
    (``--server`` names a closed port) and no automatic sync; yields its pid."""
    log = workdir / "station.log"
    command = [sys.executable, "-m", "lineside", "station", "run", str(bundle)]
    command += ["--data-dir", str(workdir / "station-data"), "--port", str(port)]
    command += ["--sync-every", "0", "--server", dead_server]
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command,
            env=server_environment("sqlite:///unused.db", workdir / "unused-data"),
            cwd=workdir,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until_healthy(f"http://{HOST}:{port}", process, log)
        yield process.pid
    finally:
        stop_server(process)


def drive_line(
    args: argparse.Namespace, where: str, base_url: str, delegation: Delegation, pid: int
) -> LineMeasurement:
    def connect() -> FactoryClient:
        return FactoryClient(base_url, delegation.fixture_key)

    token = delegation.enrollment_token
    if args.warmup:
        run_line(LinePlan(args.warmup, args.fixtures, args.fail_rate, args.seed + 1, token, "bench"), connect)
    plan = LinePlan(args.count, args.fixtures, args.fail_rate, args.seed, token, "bench")
    cpu, start = process_tree_cpu(pid), time.monotonic()
    report = run_line(plan, connect)
    window = time.monotonic() - start
    return LineMeasurement(where, report, process_tree_cpu(pid) - cpu, window, peak_rss_mib(pid))


def line_measurements(args: argparse.Namespace) -> list[LineMeasurement]:
    """The station first (the server process not even running), then the server's own line
    on its SQLite database, the same fixtures, the same plan."""
    workdir = Path(tempfile.mkdtemp(prefix="lineside-bench-station-line-"))
    try:
        url = f"sqlite:///{workdir / 'lineside.db'}"
        budget = 2 * (args.warmup + args.count)
        delegation = delegate(url, workdir / "data", budget=budget)
        bundle = workdir / "station.json"
        bundle.write_text(json.dumps(delegation.bundle))
        bundle.chmod(0o600)
        measurements = []
        port = args.port or free_port()
        with running_station(bundle, workdir, port, f"http://{HOST}:{free_port()}") as pid:
            print(
                f"... station up on port {port}, server down; {args.warmup} warm-up cycles, then {args.count}"
            )
            measurements.append(drive_line(args, "station", f"http://{HOST}:{port}", delegation, pid))
        port = args.port or free_port()
        with running_server(url, workdir, args.workers, port) as pid:
            print(f"... server up on port {port} ({args.workers} workers); the same line")
            measurements.append(drive_line(args, "server", f"http://{HOST}:{port}", delegation, pid))
        return measurements
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def print_line(args: argparse.Namespace, measurements: list[LineMeasurement]) -> None:
    steps = "  ".join(f"{step + ' p50/p99':>13}" for step in (*STEPS, "cycle"))
    print()
    print(
        f"{'at':<8} {'DUTs':>5} {'errors':>6} {'cycles/s':>8} {'CPU/cycle':>9} {'peak RSS':>9}"
        f"  {steps}   (ms)"
    )
    for m in measurements:
        r = m.report
        cells = []
        for step in (*STEPS, "cycle"):
            cuts = r.percentiles_ms(step)
            cells.append(f"{cuts[0]:>6.1f} {cuts[1]:>6.1f}" if cuts else f"{'-':>6} {'-':>6}")
        print(
            f"{m.where:<8} {r.completed:>5} {r.errors:>6} {r.cycles_per_second:>8.1f}"
            f" {m.cpu / max(r.completed, 1) * 1000:>7.2f}ms {m.peak_rss_mib:>6.0f}MiB  {'  '.join(cells)}"
        )
        for message in r.error_messages[:5]:
            print(f"  error: {message}")
    station, server = measurements
    ratio = station.report.cycles_per_second / max(server.report.cycles_per_second, 1e-9)
    met = station.report.cycles_per_second >= TARGET_CYCLES_PER_SECOND and not station.report.errors
    print()
    print(
        f"station/server cycles/s: {ratio:.2f} (the server: {args.workers} workers on SQLite; the station:"
        " one process on its SQLite)"
    )
    print(
        f"station: target {TARGET_CYCLES_PER_SECOND:.0f} cycles/s with {args.fixtures} fixtures:"
        f" {'met' if met else 'NOT met'} ({station.report.cycles_per_second:.0f} cycles/s)"
    )


def print_sync(measurements: list[SyncMeasurement]) -> None:
    print()
    print(
        f"{'backend':<9} {'entries':>8} {'units':>6} {'sync s':>7} {'entries/s':>9} {'server CPU':>10}"
        f"  {'floor rows/s':>12} {'ratio':>6}   (floor: raw executemany of as many test_runs rows)"
    )
    for m in measurements:
        print(
            f"{m.backend:<9} {m.applied:>8,} {m.units:>6,} {m.sync_seconds:>7.1f} {m.rate:>9,.0f}"
            f" {m.server_cpu / m.sync_seconds:>10.0%}  {m.floor_rate:>12,.0f} {m.rate / m.floor_rate:>6.2f}"
        )
    print()
    for m in measurements:
        met = m.rate >= TARGET_SYNC_ENTRIES_PER_SECOND
        verdict = ("met" if met else "NOT met") if m.backend == "postgres" else "reported, not held to it"
        print(
            f"{m.backend}: sync target {TARGET_SYNC_ENTRIES_PER_SECOND:,.0f} entries/s on PostgreSQL:"
            f" {verdict} ({m.rate:,.0f} entries/s)"
        )


def parse_args() -> argparse.Namespace:
    parser = bench_parser(__doc__)
    parser.add_argument("--part", choices=["line", "sync", "both"], default="both")
    parser.add_argument("--entries", type=int, default=20_000, help="ledger entries to sync")
    parser.add_argument(
        "--fleet", type=int, default=0, help="devices the server holds already (another organization's)"
    )
    parser.add_argument("--fixtures", type=int, default=32, help="concurrent fixtures (threads)")
    parser.add_argument("--count", type=int, default=3000, help="measured DUT cycles, at each")
    parser.add_argument("--warmup", type=int, default=320, help="unmeasured DUT cycles before them")
    parser.add_argument("--fail-rate", type=float, default=0.05, help="share of DUTs whose test fails")
    parser.add_argument("--seed", type=int, default=1, help="decides which DUTs fail")
    parser.add_argument("--workers", type=int, default=2, help="server (and station) worker processes")
    parser.add_argument("--port", type=int, default=0, help="server port on 127.0.0.1 (0: a free one)")
    args = parser.parse_args()
    if args.entries < 1:
        parser.error("--entries must be positive")
    return args


def main() -> None:
    args = parse_args()
    if args.part in ("line", "both"):
        print(f"Line:   {args.fixtures} fixtures, fail rate {args.fail_rate:g}, seed {args.seed}")
        stop_cleanly_on_signals()
        print_machine()
        try:
            line = line_measurements(args)
        except KeyboardInterrupt:
            raise SystemExit("interrupted: station and server stopped") from None
        print_line(args, line)
        print()
    if args.part in ("sync", "both"):
        fleet = f", into a server holding {args.fleet:,} devices" if args.fleet else ""
        print(f"Sync:   {args.entries:,} entries, chunks of {CHUNK}, {args.workers} server workers{fleet}")
        print_sync(each_backend(args, lambda backend: sync_backend(args, backend)))


if __name__ == "__main__":
    main()
