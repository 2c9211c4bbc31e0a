"""How fast the presence flush activates devices on their first MQTT connection.

What it measures: ``lineside.services.presence.write_window``, the one transaction a
``PresenceRecorder.flush`` writes every ``LINESIDE_PRESENCE_FLUSH_SECONDS``, called directly
(no broker, no server) on windows of ``--window`` devices (default 2,000; the MQTT activation
bench's flushes hold 1,000-3,000) that each connected once:

- first connections: every device of the window is ``defined`` in a product that does not
  require blessing, so the flush activates all of them (one ``device.activated`` event each)
  and writes their presence;
- reconnects: the same windows again, now activated: presence only (the candidates query
  finds nothing to activate).

Per window it reports devices/s (window size / wall seconds of the call) and where the time
went, from timing wrappers around the repository methods the flush calls: **candidates**
(``activation_candidates``), **activate** (``activate_if_still``), **events**
(``SqlEventOutbox.add_many``), **presence** (``record_presence``), **commit** (the counters'
upsert and COMMIT) and **other** (the rest: events built, BEGIN, connection checkout). Each
figure is the median over all windows of all rounds, with the range in brackets. Every round
(``--rounds``, default 3) seeds ``--devices`` new devices (default 10,000) in a new product
through the service layer (untimed), then flushes them window by window; the tables grow
from round to round as they would in production.

Afterwards it checks that every device is activated with its first connection's time as
``activated_at``, that each has exactly one ``device.activated`` event, and that the device
counters agree with the table.

Reproduce (from the repository root):

    .venv/bin/python bench/presence_flush.py                            # SQLite and PostgreSQL
    .venv/bin/python bench/presence_flush.py --backend postgres --window 1000 --rounds 5

SQLite lives in a temporary directory. On PostgreSQL (``--postgres-url``, default
127.0.0.1:5432, user postgres) the script creates a database ``lineside_bench_<hex>`` and
drops it at the end. On PostgreSQL the figures include the server's work, on the same cores.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from scratch import PhaseClock, bench_parser, each_backend, phase_timing, scratch_database
from sqlalchemy import select, text

from lineside.adapters.db import tables as t
from lineside.adapters.db.device_rows import DeviceMqttQueries
from lineside.adapters.db.repositories import SqlEventOutbox
from lineside.adapters.db.unit_of_work import SqlUnitOfWork
from lineside.bootstrap import Application, bootstrap
from lineside.domain.clock import utc_now
from lineside.domain.device_specs import specs_from_serial_numbers
from lineside.domain.models import Principal
from lineside.services.devices import define_batch
from lineside.services.organizations import authenticate_api_key, create_organization
from lineside.services.presence import Change, Window, write_window
from lineside.services.products import create_product
from lineside.settings import Settings

PARTS = ("candidates", "activate", "events", "presence", "commit")
KINDS = ("first connections", "reconnects")


# What write_window calls, timed as its parts.
PART_TARGETS = [
    (DeviceMqttQueries, "activation_candidates", "candidates"),
    (DeviceMqttQueries, "activate_if_still", "activate"),
    (SqlEventOutbox, "add_many", "events"),
    (DeviceMqttQueries, "record_presence", "presence"),
    (SqlUnitOfWork, "commit", "commit"),
]


@dataclass
class Sample:
    """One window: its size, wall seconds and seconds per part."""

    devices: int
    seconds: float
    parts: dict[str, float]

    @property
    def rate(self) -> float:
        return self.devices / self.seconds


def seed(app: Application, principal: Principal, count: int, round_number: int) -> list[str]:
    """``count`` new devices, ``defined`` in a new product that does not require blessing."""
    ctx = app.services
    product = create_product(ctx, principal, name=f"bench-{round_number}", fields=[])
    specs = specs_from_serial_numbers(f"R{round_number}-{index:09d}" for index in range(count))
    batch = define_batch(ctx, principal, product_id=product.id, specs=specs)
    return [defined.device.id for defined in batch.devices]


def connection_window(device_ids: list[str]) -> Window:
    """Each device connected once, a microsecond apart (each its own activated_at)."""
    start = utc_now()
    at = {device_id: start + timedelta(microseconds=index) for index, device_id in enumerate(device_ids)}
    changes = {device_id: Change(True, moment) for device_id, moment in at.items()}
    return Window(changes=changes, connected=dict(at))


def flush(app: Application, device_ids: list[str], *, first: bool, times: dict[str, datetime]) -> Sample:
    """One timed write_window; the connection times of first connections go into ``times``."""
    window = connection_window(device_ids)
    clock = PhaseClock()
    with phase_timing(clock, PART_TARGETS):
        start = time.perf_counter()
        flushed = write_window(app.services, window)
        seconds = time.perf_counter() - start
    expected = len(device_ids) if first else 0
    if flushed.activated != expected:
        raise SystemExit(f"expected {expected} devices activated, the flush activated {flushed.activated}")
    if first:
        times.update(window.connected)
    return Sample(len(device_ids), seconds, clock.seconds)


def verify(app: Application, times: dict[str, datetime]) -> None:
    """Every device activated once, at its first connection, with one event; counters agree."""
    checks = {
        "devices not activated": "SELECT count(*) FROM devices WHERE state != 'activated'",
        "devices without exactly one event": (
            "SELECT count(*) FROM devices d WHERE (SELECT count(*) FROM events e"
            " WHERE e.subject_id = d.id AND e.type = 'device.activated') != 1"
        ),
    }
    with app.engine.connect() as connection:
        for problem, query in checks.items():
            found = connection.execute(text(query)).scalar_one()
            if found:
                raise SystemExit(f"{found} {problem}")
        counted = connection.execute(
            text("SELECT coalesce(sum(devices), 0) FROM device_counts WHERE state = 'activated'")
        ).scalar_one()
        stored = dict(connection.execute(select(t.devices.c.id, t.devices.c.activated_at)).tuples().all())
    if stored != times:
        wrong = sum(1 for device_id, at in times.items() if stored.get(device_id) != at)
        raise SystemExit(f"{wrong} devices not activated at their first connection's time")
    if counted != len(times):
        raise SystemExit(f"the counters say {counted} activated devices, expected {len(times)}")


def median_range(values: list[float], scale: float = 1.0, digits: int = 1) -> str:
    low, mid, high = (min(values) * scale, statistics.median(values) * scale, max(values) * scale)
    return f"{mid:,.{digits}f} [{low:,.{digits}f}-{high:,.{digits}f}]"


def report(kind: str, samples: list[Sample]) -> None:
    print(f"  {kind}: {len(samples)} windows of {samples[0].devices:,} devices")
    print(f"    devices/s   {median_range([s.rate for s in samples], digits=0)}")
    print(f"    window ms   {median_range([s.seconds for s in samples], 1000)}")
    for part in (*PARTS, "other"):
        values = [_part_seconds(sample, part) for sample in samples]
        print(f"    {part:<11} {median_range(values, 1000)} ms")


def _part_seconds(sample: Sample, part: str) -> float:
    if part == "other":
        return sample.seconds - sum(sample.parts.values())
    return sample.parts.get(part, 0.0)


def measure(backend: str, args: argparse.Namespace) -> None:
    with scratch_database(backend, args.postgres_url, "lineside-bench-presence-") as (url, workdir):
        app = bootstrap(Settings(database_url=url, data_dir=Path(workdir) / "data"), migrate=True)
        try:
            times: dict[str, datetime] = {}
            samples = run_rounds(app, args, times)
            verify(app, times)
        finally:
            app.close()
    print(f"{backend}:")
    for kind in KINDS:
        report(kind, samples[kind])


def run_rounds(
    app: Application, args: argparse.Namespace, times: dict[str, datetime]
) -> dict[str, list[Sample]]:
    admin_key = create_organization(app.services, "bench").admin_key.secret
    principal = authenticate_api_key(app.services, admin_key)
    samples: dict[str, list[Sample]] = {kind: [] for kind in KINDS}
    for round_number in range(args.rounds):
        device_ids = seed(app, principal, args.devices, round_number)
        starts = range(0, len(device_ids), args.window)
        windows = [device_ids[start : start + args.window] for start in starts]
        for kind in KINDS:
            gc.collect()
            for ids in windows:
                samples[kind].append(flush(app, ids, first=kind == KINDS[0], times=times))
    return samples


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--devices", type=int, default=10_000, help="devices seeded per round")
    parser.add_argument("--window", type=int, default=2_000, help="devices per flush window")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    each_backend(args, lambda backend: measure(backend, args))


if __name__ == "__main__":
    main()
