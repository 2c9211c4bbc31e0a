"""Every hot path at a small fleet and at a large one: does it stay flat?

One organization is seeded through the batch path (``define_batch``, 200,000 devices a call)
to ``--small`` devices (default 10,000), measured, then seeded on to ``--devices`` (default
1,000,000) and measured again, against a real ``lineside serve`` (``--workers`` processes)
on a fresh SQLite file or PostgreSQL database. The server is stopped while seeding and
warmed up before each measurement. Measured each time:

- the factory line: ``--fixtures`` concurrent fixtures (the ``factory simulate`` code) take
  ``--cycles`` DUTs through enroll, test and bless: cycles/s and p50/p99 per step;
- ``GET /device/v1/me`` on one keep-alive connection: p50/p99;
- the device list: the first page of 100, and a page 90% of the way down (by cursor);
- a search by serial number;
- claiming a static-token device by its QR code (``POST /api/v1/claims``);
- activating a blessed device with a production token (``POST /device/v1/activate``);
- the server's peak RSS.

Printed: each figure at both sizes, and the large one over the small one (target: at most
1.25). Latencies are measured one request at a time from this process, so they include the
client; the ratio is what matters. Targets for the factory line (300 cycles/s, p99 under
100 ms) are bench/factory_line.py's.

Reproduce (from the repository root):

    .venv/bin/python bench/scale.py                                # both backends, 1,000,000
    .venv/bin/python bench/scale.py --backend sqlite --devices 200000 --cycles 500
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from device_auth import HOST, free_port, running_server
from scratch import (
    bench_parser,
    each_backend,
    scratch_database,
)
from sqlalchemy import select

from lineside.adapters.db import tables as t
from lineside.adapters.db.paging import encode_cursor
from lineside.bootstrap import Application, bootstrap
from lineside.domain.device_specs import specs_from_serial_numbers
from lineside.domain.models import Scope
from lineside.entrypoints.cli.factory_client import FactoryClient
from lineside.entrypoints.cli.factory_simulation import STEPS, LinePlan, run_line
from lineside.services.devices import define_batch
from lineside.services.organizations import authenticate_api_key, create_api_key, create_organization
from lineside.services.products import create_product
from lineside.services.quotas import set_device_quota
from lineside.services.static_tokens import batch_labels, create_static_tokens
from lineside.settings import Settings

SEED_BATCH = 200_000
TARGET_RATIO = 1.25
SAMPLES = 300  # requests per latency figure (p99: the 297th)
PASSWORD = "bench passphrase 1"
# Generous limits for the bench's one client address (the defaults bound a guessing attacker).
SERVER_ENV = {
    "LINESIDE_SIGN_UPS_PER_ADDRESS_PER_WINDOW": "1000000",
    "LINESIDE_SIGN_IN_ADDRESS_ATTEMPTS_PER_WINDOW": "1000000",
    "LINESIDE_CLAIM_ADDRESS_ATTEMPTS_PER_WINDOW": "1000000",
}


@dataclass
class World:
    """What the bench made, and the keys it acts with."""

    url: str
    workdir: Path
    organization_id: str
    admin_key: str
    factory_key: str
    fleet_product: str
    line_product: str
    claim_product: str
    seeded: int = 0
    serials: list[str] = field(default_factory=list)


@dataclass
class Figures:
    size: int
    values: dict[str, float] = field(default_factory=dict)


# -- setup and seeding ------------------------------------------------------------------------


@contextmanager
def opened(world: World) -> Iterator[Application]:
    settings = Settings(database_url=world.url, data_dir=world.workdir / "data", _env_file=None)
    app = bootstrap(settings, migrate=True)
    try:
        yield app
    finally:
        app.close()


def make_world(url: str, workdir: Path) -> World:
    settings = Settings(database_url=url, data_dir=workdir / "data", _env_file=None)
    app = bootstrap(settings, migrate=True)
    try:
        ctx = app.services
        created = create_organization(ctx, "bench scale")
        admin = authenticate_api_key(ctx, created.admin_key.secret)
        set_device_quota(ctx, created.organization.id, 100_000_000)
        factory_key = create_api_key(ctx, admin, name="line", scopes=frozenset({Scope.FACTORY})).secret
        fleet, line, boxes = (
            create_product(ctx, admin, name=name, fields=[]).id for name in ("fleet", "line", "boxes")
        )
    finally:
        app.close()
    return World(
        url, workdir, created.organization.id, created.admin_key.secret, factory_key, fleet, line, boxes
    )


def seed(world: World, to: int) -> None:
    """Define fleet devices in batches until the organization holds ``to`` of them."""
    with opened(world) as app:
        admin = authenticate_api_key(app.services, world.admin_key)
        started = time.perf_counter()
        while world.seeded < to:
            count = min(SEED_BATCH, to - world.seeded)
            serials = [f"F-{index:08d}" for index in range(world.seeded, world.seeded + count)]
            define_batch(
                app.services, admin, product_id=world.fleet_product, specs=specs_from_serial_numbers(serials)
            )
            world.seeded += count
            world.serials.append(serials[len(serials) // 2])
            rate = world.seeded / (time.perf_counter() - started)
            print(f"    seeded {world.seeded:>9,} devices ({rate:,.0f}/s)", flush=True)


# -- the measurements ---------------------------------------------------------------------------


def percentile(samples: list[float], cut: int) -> float:
    return statistics.quantiles(samples, n=100)[cut - 1] * 1000 if len(samples) > 1 else float("nan")


def timed(call: Callable[[], httpx.Response], expect: int, count: int = SAMPLES) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        response = call()
        samples.append(time.perf_counter() - started)
        if response.status_code != expect:
            raise SystemExit(f"{response.request.url} answered {response.status_code}: {response.text[:300]}")
    return samples


def add_latency(figures: Figures, name: str, samples: list[float]) -> None:
    figures.values[f"{name} p50 ms"] = percentile(samples, 50)
    figures.values[f"{name} p99 ms"] = percentile(samples, 99)


def factory_line(args: argparse.Namespace, world: World, base_url: str, figures: Figures) -> None:
    with FactoryClient(base_url, world.factory_key) as api:
        token = api.create_enrollment_token(world.line_product, f"scale {figures.size}").token or ""

    def connect() -> FactoryClient:
        return FactoryClient(base_url, world.factory_key)

    run_line(LinePlan(min(args.cycles, 200), args.fixtures, 0.05, 2, token, "warm-up"), connect)
    report = run_line(LinePlan(args.cycles, args.fixtures, 0.05, 1, token, "bench"), connect)
    if report.errors:
        raise SystemExit(f"factory line errors: {report.error_messages[:3]}")
    figures.values["factory cycles/s"] = report.cycles_per_second
    for step in STEPS:
        cuts = report.percentiles_ms(step)
        if cuts:
            figures.values[f"{step} p50 ms"], figures.values[f"{step} p99 ms"] = cuts


def device_token(http: httpx.Client, device_id: str) -> str:
    answer = http.post(f"/api/v1/devices/{device_id}/credentials", json={"type": "token"})
    answer.raise_for_status()
    secret: str = answer.json()["secret"]
    return secret


def device_reads(world: World, http: httpx.Client, figures: Figures) -> None:
    first = http.get("/api/v1/devices", params={"product_id": world.fleet_product, "limit": 1}).json()
    token = device_token(http, first["items"][0]["id"])
    me = {"Authorization": f"Bearer {token}"}
    timed(lambda: http.get("/device/v1/me", headers=me), 200, 200)  # warm-up
    add_latency(figures, "GET /device/v1/me", timed(lambda: http.get("/device/v1/me", headers=me), 200, 1000))
    add_latency(figures, "device list, first page", timed(lambda: http.get("/api/v1/devices"), 200))
    deep = {"cursor": deep_cursor(world)}
    add_latency(
        figures, "device list, page at 90%", timed(lambda: http.get("/api/v1/devices", params=deep), 200)
    )
    serial = {"serial_number": world.serials[-1]}
    found = http.get("/api/v1/devices", params=serial).json()["items"]
    if len(found) != 1:
        raise SystemExit(f"serial search found {len(found)} devices")
    add_latency(figures, "serial search", timed(lambda: http.get("/api/v1/devices", params=serial), 200))


def deep_cursor(world: World) -> str:
    with opened(world) as app, app.engine.connect() as connection:
        d = t.devices.c
        position = world.seeded * 9 // 10
        query = select(d.id).where(d.organization_id == world.organization_id).order_by(d.id)
        device_id = connection.execute(query.offset(position).limit(1)).scalar_one()
    return encode_cursor(device_id)


def claims(world: World, http: httpx.Client, figures: Figures) -> None:
    with opened(world) as app:
        admin = authenticate_api_key(app.services, world.admin_key)
        batch = create_static_tokens(app.services, admin, world.claim_product, count=SAMPLES)
        codes = [
            urlsplit(row.claim_url).path.rsplit("/", 1)[1]
            for row in batch_labels(app.services, admin, batch.id).rows
        ]
    email = f"owner-{figures.size}@example.com"
    http.post("/api/v1/users", json={"email": email, "password": PASSWORD}).raise_for_status()
    signed_in = http.post("/api/v1/auth/token", json={"email": email, "password": PASSWORD})
    person = {"Authorization": f"Bearer {signed_in.json()['access_token']}"}
    pending = iter(codes)
    samples = timed(lambda: http.post("/api/v1/claims", json={"code": next(pending)}, headers=person), 201)
    add_latency(figures, "claim", samples)


def activations(world: World, http: httpx.Client, line: dict[str, str], figures: Figures) -> None:
    with opened(world) as app, app.engine.connect() as connection:
        d = t.devices.c
        query = select(d.id).where(d.product_id == world.line_product, d.state == "blessed").limit(SAMPLES)
        blessed = list(connection.execute(query).scalars())
    if len(blessed) < SAMPLES:
        raise SystemExit(f"only {len(blessed)} blessed devices to activate")
    samples = []
    for device_id in blessed:
        token = http.post("/api/v1/enrollment-tokens", json={}, headers=line).json()
        body = {"plan_id": token["plan_id"], "token_id": token["token_id"], "device_id": device_id}
        samples += timed(lambda body=body: http.post("/device/v1/activate", json=body), 200, 1)  # type: ignore[misc]
    add_latency(figures, "activate", samples)


def peak_rss_mib(server_pid: int) -> float:
    """The largest VmHWM among the server's processes (its workers)."""
    peak = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry.name) == server_pid or int(stat[1]) == server_pid:
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
    return peak / 1024


def measure(args: argparse.Namespace, world: World) -> Figures:
    figures = Figures(world.seeded)
    port = free_port()
    with running_server(world.url, world.workdir, args.workers, port, **SERVER_ENV) as server_pid:
        base_url = f"http://{HOST}:{port}"
        admin = {"Authorization": f"Bearer {world.admin_key}"}
        line = {"Authorization": f"Bearer {world.factory_key}"}
        with httpx.Client(base_url=base_url, headers=admin, trust_env=False, timeout=60.0) as http:
            print(f"... {world.seeded:,} devices: the factory line", flush=True)
            factory_line(args, world, base_url, figures)
            print(f"... {world.seeded:,} devices: reads, claims, activations", flush=True)
            device_reads(world, http, figures)
            claims(world, http, figures)
            activations(world, http, line, figures)
        figures.values["server peak RSS MiB"] = peak_rss_mib(server_pid)
    return figures


# -- the run ----------------------------------------------------------------------------------


def print_figures(backend: str, small: Figures, large: Figures) -> None:
    print(f"\n{backend}: at {small.size:,} and {large.size:,} devices")
    print(f"{'measure':<34} {small.size:>12,} {large.size:>12,} {'ratio':>7}")
    flat = True
    for name, before in small.values.items():
        after = large.values[name]
        # Throughput falls when things get worse; latency and memory rise.
        ratio = before / after if name.endswith("/s") else after / before
        mark = "" if ratio <= TARGET_RATIO or name.startswith("server") else "  <- over 1.25"
        flat = flat and (mark == "")
        print(f"{name:<34} {before:>12,.1f} {after:>12,.1f} {ratio:>7.2f}{mark}")
    print(f"{backend}: every figure within {TARGET_RATIO}x of the small fleet's: {'yes' if flat else 'NO'}")


def run_backend(args: argparse.Namespace, backend: str) -> None:
    with scratch_database(backend, args.postgres_url, "lineside-bench-scale-") as (url, workdir):
        world = make_world(url, workdir)
        print(f"... {backend}: seeding {args.small:,} devices", flush=True)
        seed(world, args.small)
        small = measure(args, world)
        print(f"... {backend}: seeding on to {args.devices:,} devices", flush=True)
        seed(world, args.devices)
        large = measure(args, world)
    print_figures(backend, small, large)


def parse_args() -> argparse.Namespace:
    parser = bench_parser(__doc__)
    parser.add_argument("--devices", type=int, default=1_000_000, help="the large fleet")
    parser.add_argument("--small", type=int, default=10_000, help="the small fleet")
    parser.add_argument("--cycles", type=int, default=1000, help="factory cycles measured at each size")
    parser.add_argument("--fixtures", type=int, default=32, help="concurrent fixtures")
    parser.add_argument("--workers", type=int, default=2, help="server worker processes")
    args = parser.parse_args()
    if not 0 < args.small < args.devices:
        parser.error("--small must be positive and below --devices")
    return args


def main() -> None:
    args = parse_args()
    each_backend(args, lambda backend: run_backend(args, backend))


if __name__ == "__main__":
    main()
