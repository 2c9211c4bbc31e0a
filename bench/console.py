"""The console's pages at fleet size: server time per page with a million devices.

One organization is seeded through the batch path (bench/scale.py's seeding) to ``--devices``
(default 1,000,000), a person is invited into it as an admin, and a real ``lineside serve``
(``--workers`` processes) on a fresh SQLite file or PostgreSQL database answers, one request
at a time from this process, with the person's session cookie:

- the overview (devices by state per product, the latest activity, the funnel over 30 days
  per day and over 365 days per week, online now, yields) and its live activity feed;
- the device list: the first page, a page 90% of the way down (by cursor), newest first, the
  devices online;
- a search by serial number and by MAC, and one device's page (facts, credentials, test
  runs, history);
- the factory page and its live test runs, the firmware page, the audit log's first page;
- a metadata search that matches nothing (no index: it reads the whole organization; a few
  samples, reported beside the target, not held to it);
- and, as the floor in the same run, ``GET /healthz`` (the framework and the socket, no page).

Printed: p50, p95 and p99 per page, the p95 over the floor's, and the target (p95 under
150 ms) met or not. Latencies include this client on the same machine.

Reproduce (from the repository root):

    .venv/bin/python bench/console.py                                  # both backends, 1,000,000
    .venv/bin/python bench/console.py --backend sqlite --devices 100000
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import httpx
from device_auth import HOST, free_port, running_server
from scale import SERVER_ENV, World, deep_cursor, make_world, opened, percentile, seed, timed
from scratch import bench_parser, each_backend, scratch_database

from lineside.domain.models import Role
from lineside.services import organizations, people

TARGET_P95_MS = 150.0
SAMPLES = 200
SLOW_SAMPLES = 5
# No index holds metadata: a search for a value no device has reads every device of the
# organization. Timed (a few samples) and reported, not held to the target.
METADATA_SEARCH = "metadata search (no match)"
PASSWORD = "bench passphrase 1"
ADDRESS = "192.0.2.10"


def console_person(world: World) -> str:
    """A person invited into the organization as an admin; their sign-in token."""
    with opened(world) as app:
        ctx = app.services
        email = f"console-{world.organization_id[-8:]}@bench.invalid"
        people.sign_up(ctx, email, PASSWORD, client_address=ADDRESS)
        admin = organizations.authenticate_api_key(ctx, world.admin_key)
        invited = people.invite(ctx, admin, world.organization_id, email, Role.ADMIN)
        token = people.sign_in(ctx, email, PASSWORD, client_address=ADDRESS).token
        people.accept_invitation(ctx, people.authenticate_user_token(ctx, token), invited.code)
    return token


def pages(world: World, http: httpx.Client) -> dict[str, str]:
    """Each page to time, by name; a device found by its serial number for the device page."""
    console = f"/console/{world.organization_id}"
    serial = world.serials[len(world.serials) // 2]
    found = http.get(f"{console}/devices", params={"serial": serial})
    marker = f'href="{console}/devices/'
    device_id = found.text.split(marker, 1)[1].split('"', 1)[0]
    return {
        "floor: GET /healthz": "/healthz",
        "overview": console,
        "overview, 365 d by week": f"{console}?days=365&bucket=week",
        "activity feed (live)": f"{console}/activity",
        "devices, first page": f"{console}/devices",
        "devices, 90% down": f"{console}/devices?cursor={deep_cursor(world)}",
        "devices, newest first": f"{console}/devices?order=newest",
        "devices online": f"{console}/devices?online=yes",
        "serial search": f"{console}/devices?serial={serial}",
        "MAC search": f"{console}/devices?address=02:00:5e:00:53:01",
        "a device": f"{console}/devices/{device_id}",
        "factory": f"{console}/factory",
        "test runs (live)": f"{console}/factory/test-runs",
        "firmware": f"{console}/firmware",
        "audit log": f"{console}/audit",
        METADATA_SEARCH: f"{console}/devices?meta=colour%3Dnone",
    }


def measure(args: argparse.Namespace, world: World, token: str) -> dict[str, list[float]]:
    port = free_port()
    with running_server(world.url, world.workdir, args.workers, port, **SERVER_ENV):
        base = f"http://{HOST}:{port}"
        with httpx.Client(base_url=base, trust_env=False, timeout=60.0) as http:
            http.cookies.set("lineside_session", token)
            targets = pages(world, http)
            results = {}
            for name, path in targets.items():
                get = _getter(http, path)
                slow = name == METADATA_SEARCH  # reads the whole organization: a few samples
                timed(get, 200, count=2 if slow else 20)  # warm-up, unmeasured
                results[name] = timed(get, 200, count=SLOW_SAMPLES if slow else args.samples)
    return results


def _getter(http: httpx.Client, path: str) -> Callable[[], httpx.Response]:
    return lambda: http.get(path)


def print_pages(backend: str, devices: int, results: dict[str, list[float]]) -> None:
    floor = percentile(results["floor: GET /healthz"], 95)
    requests = len(next(iter(results.values())))
    print(f"\n{backend}: console pages with {devices:,} devices ({requests} requests each)")
    print(f"{'page':<28} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'p95/floor':>10}")
    met = True
    for name, samples in results.items():
        p95 = percentile(samples, 95)
        if not name.startswith("floor") and name != METADATA_SEARCH:
            met = met and p95 < TARGET_P95_MS
        p50, p99 = percentile(samples, 50), percentile(samples, 99)
        print(f"{name:<28} {p50:>8.1f} {p95:>8.1f} {p99:>8.1f} {p95 / floor:>10.1f}")
    verdict = "yes" if met else "NO"
    print(f"{backend}: every page (but the metadata search) under {TARGET_P95_MS:.0f} ms at p95: {verdict}")


def run_backend(args: argparse.Namespace, backend: str) -> None:
    with scratch_database(backend, args.postgres_url, "lineside-bench-console-") as (url, workdir):
        world = make_world(url, workdir)
        print(f"... {backend}: seeding {args.devices:,} devices", flush=True)
        seed(world, args.devices)
        results = measure(args, world, console_person(world))
    print_pages(backend, args.devices, results)


def parse_args() -> argparse.Namespace:
    parser = bench_parser(__doc__)
    parser.add_argument("--devices", type=int, default=1_000_000, help="devices in the organization")
    parser.add_argument("--samples", type=int, default=SAMPLES, help="measured requests per page")
    parser.add_argument("--workers", type=int, default=2, help="server worker processes")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    each_backend(args, lambda backend: run_backend(args, backend))


if __name__ == "__main__":
    main()
