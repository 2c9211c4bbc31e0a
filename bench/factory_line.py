"""DUT cycles per second: K concurrent fixtures taking units through enroll -> test -> bless.

What it measures: how many Devices Under Test per second one ``lineside serve`` takes through
the whole factory cycle, and the p50 and p99 latency of each step. A cycle is three requests:

    POST /api/v1/factory/duts            (factory enrollment token, a fresh random hardware id)
    POST /api/v1/devices/{id}/test-runs  (factory API key; fails with probability --fail-rate)
    POST /api/v1/devices/{id}/bless      (green if the test passed, red otherwise: checked)

The fixtures are the line simulator of ``lineside factory simulate`` (the same code): one
thread per fixture, each with its own ``FactoryClient`` on one keep-alive connection. The
server is ``python -m lineside serve --no-migrate --workers W`` on 127.0.0.1 with a fresh
SQLite file or a fresh PostgreSQL database, started and stopped the way ``device_auth.py``
does it (that script's helpers are reused). Setup (organization, factory key, product,
factory enrollment token) goes through the service layer before the server starts.

Each backend runs ``--warmup`` unmeasured cycles, then ``--count`` measured ones. Printed:
cycles/s, p50/p99 per step and per cycle, errors, and how the machine's CPU was shared in
the measured window (server processes, this client process, everything else), with server
CPU per cycle, which stays comparable when the machine is busy.

Target on the 2-core dev machine: at least 300 DUT cycles/s with 32 fixtures, p99 < 100 ms.

Reproduce (from the repository root):

    .venv/bin/python bench/factory_line.py                       # SQLite then PostgreSQL
    .venv/bin/python bench/factory_line.py --backend sqlite --fixtures 8 --count 1000
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from device_auth import HOST, free_port, machine_busy_seconds, process_tree_cpu, running_server
from scratch import (
    bench_parser,
    each_backend,
    postgres_database,
)

from lineside.bootstrap import bootstrap
from lineside.domain.models import Scope
from lineside.entrypoints.cli.factory_client import FactoryClient
from lineside.entrypoints.cli.factory_simulation import STEPS, LinePlan, LineReport, run_line
from lineside.services.organizations import authenticate_api_key, create_api_key, create_organization
from lineside.services.products import create_product
from lineside.settings import Settings

TARGET_CYCLES_PER_SECOND = 300.0
TARGET_P99_MS = 100.0


@dataclass(frozen=True)
class Line:
    factory_key: str
    product_id: str


@dataclass
class Measurement:
    backend: str
    report: LineReport
    server_cpu: float
    machine_cpu: float
    window: float


def prepare(database_url: str, data_dir: Path) -> Line:
    """Migrate, then an organization with a factory key and a product."""
    app = bootstrap(Settings(database_url=database_url, data_dir=data_dir, _env_file=None), migrate=True)
    try:
        ctx = app.services
        admin = authenticate_api_key(ctx, create_organization(ctx, "bench factory").admin_key.secret)
        key = create_api_key(ctx, admin, name="line", scopes=frozenset({Scope.FACTORY})).secret
        product = create_product(ctx, admin, name="bench product", fields=[])
    finally:
        app.close()
    return Line(key, product.id)


def measure(
    args: argparse.Namespace, backend: str, base_url: str, line: Line, server_pid: int
) -> Measurement:
    with FactoryClient(base_url, line.factory_key) as api:
        token = api.create_enrollment_token(line.product_id, "bench").token or ""

    def connect() -> FactoryClient:
        return FactoryClient(base_url, line.factory_key)

    if args.warmup:
        warmup = LinePlan(args.warmup, args.fixtures, args.fail_rate, args.seed + 1, token, "bench")
        run_line(warmup, connect)
    plan = LinePlan(args.count, args.fixtures, args.fail_rate, args.seed, token, "bench")
    server_cpu, machine_cpu, start = process_tree_cpu(server_pid), machine_busy_seconds(), time.monotonic()
    report = run_line(plan, connect)
    window = time.monotonic() - start
    server_cpu = process_tree_cpu(server_pid) - server_cpu
    machine_cpu = machine_busy_seconds() - machine_cpu
    return Measurement(backend, report, server_cpu, machine_cpu, window)


def run_backend(args: argparse.Namespace, backend: str) -> Measurement:
    workdir = Path(tempfile.mkdtemp(prefix="lineside-bench-factory-"))
    try:
        with ExitStack() as stack:
            if backend == "postgres":
                url = stack.enter_context(postgres_database(args.postgres_url))
            else:
                url = f"sqlite:///{workdir / 'lineside.db'}"
            line = prepare(url, workdir / "data")
            port = args.port or free_port()
            server_pid = stack.enter_context(running_server(url, workdir, args.workers, port))
            print(f"... {backend}: server up on port {port}; {args.warmup} warm-up cycles, then {args.count}")
            return measure(args, backend, f"http://{HOST}:{port}", line, server_pid)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def step_columns(report: LineReport) -> str:
    cells = []
    for step in (*STEPS, "cycle"):
        cuts = report.percentiles_ms(step)
        cells.append(f"{cuts[0]:>6.1f} {cuts[1]:>6.1f}" if cuts else f"{'-':>6} {'-':>6}")
    return "  ".join(cells)


def worst_step_p99(report: LineReport) -> float:
    return max((report.percentiles_ms(step) or (0.0, 0.0))[1] for step in STEPS)


def print_table(measurements: list[Measurement]) -> None:
    steps = "  ".join(f"{step + ' p50/p99':>13}" for step in (*STEPS, "cycle"))
    print(f"{'backend':<9} {'DUTs':>5} {'errors':>6} {'yield':>6} {'cycles/s':>8}  {steps}   (ms)")
    for m in measurements:
        r = m.report
        print(
            f"{m.backend:<9} {r.completed:>5} {r.errors:>6} {r.yield_percent:>5.1f}%"
            f" {r.cycles_per_second:>8.1f}  {step_columns(r)}"
        )


def print_cpu(m: Measurement) -> None:
    client = m.report.client_cpu_seconds
    other = max(0.0, m.machine_cpu - m.server_cpu - client)
    per_cycle = m.server_cpu / max(m.report.completed, 1) * 1000
    print(
        f"{m.backend}: CPU in the {m.window:.1f} s window (of {(os.cpu_count() or 1) * 100}%):"
        f" server {m.server_cpu / m.window:.0%}, fixtures (this process) {client / m.window:.0%},"
        f" everything else {other / m.window:.0%}; server CPU per DUT cycle {per_cycle:.2f} ms"
    )
    for message in m.report.error_messages[:5]:
        print(f"  error: {message}")


def print_verdict(args: argparse.Namespace, m: Measurement) -> None:
    rate, worst = m.report.cycles_per_second, worst_step_p99(m.report)
    met = rate >= TARGET_CYCLES_PER_SECOND and worst < TARGET_P99_MS and not m.report.errors
    print(
        f"{m.backend}: target {TARGET_CYCLES_PER_SECOND:.0f} cycles/s, p99 < {TARGET_P99_MS:.0f} ms per step"
        f" with {args.fixtures} fixtures: {'met' if met else 'NOT met'}"
        f" ({rate:.0f} cycles/s, worst step p99 {worst:.1f} ms)"
    )


def print_results(args: argparse.Namespace, measurements: list[Measurement]) -> None:
    print()
    print_table(measurements)
    print()
    for m in measurements:
        print_cpu(m)
    print()
    for m in measurements:
        print_verdict(args, m)


def parse_args() -> argparse.Namespace:
    parser = bench_parser(__doc__)
    parser.add_argument("--fixtures", type=int, default=32, help="concurrent fixtures (threads)")
    parser.add_argument("--count", type=int, default=3000, help="measured DUT cycles")
    parser.add_argument("--warmup", type=int, default=320, help="unmeasured DUT cycles before them")
    parser.add_argument("--fail-rate", type=float, default=0.05, help="share of DUTs whose test fails")
    parser.add_argument("--seed", type=int, default=1, help="decides which DUTs fail")
    parser.add_argument("--workers", type=int, default=2, help="server worker processes")
    parser.add_argument("--port", type=int, default=0, help="server port on 127.0.0.1 (0: a free one)")
    args = parser.parse_args()
    if args.fixtures < 1 or args.count < 1 or args.warmup < 0 or not 0 <= args.fail_rate <= 1:
        parser.error("--fixtures and --count must be positive, --warmup >= 0, --fail-rate in [0, 1]")
    return args


def main() -> None:
    args = parse_args()
    print(
        f"Run:    {args.fixtures} fixtures, {args.workers} server workers, fail rate {args.fail_rate:g},"
        f" seed {args.seed}"
    )
    measurements = each_backend(args, lambda backend: run_backend(args, backend))
    print_results(args, measurements)
    if any(m.report.errors or m.report.completed < args.count for m in measurements):
        raise SystemExit("some DUT cycles went wrong (see the errors above)")


if __name__ == "__main__":
    main()
