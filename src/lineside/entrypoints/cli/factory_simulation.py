"""A simulated factory line: K fixtures, each taking Devices Under Test through the line.

Every DUT gets a fresh random hardware id (so runs never collide with earlier ones) and an
outcome drawn from a seeded generator (so a seed reproduces which units fail). A fixture is
a thread with its own ``FactoryClient`` (one keep-alive connection, like a real fixture):

    enroll (factory enrollment token + hardware id)  ->  record a test (passed or not)
        ->  bless  ->  the server answers green or red, which must match the test

Used by ``lineside factory simulate`` (below) and by ``bench/factory_line.py``.
"""

from __future__ import annotations

import queue
import random
import secrets
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import click

from lineside.entrypoints.cli.common import echo_json
from lineside.entrypoints.cli.factory_client import (
    ApiRefused,
    FactoryClient,
    FactoryClientError,
    MissingApiKey,
    ServerUnreachable,
)
from lineside.entrypoints.cli.factory_options import Refused, connection_options, factory_api, json_option
from lineside.entrypoints.cli.latency import p50_p99_ms

STEPS = ("enroll", "test", "bless")
MAX_ERRORS_KEPT = 20
_POLL_SECONDS = 0.2  # how often the collector looks whether every fixture has stopped


@dataclass(frozen=True)
class LinePlan:
    count: int
    fixtures: int
    fail_rate: float
    seed: int
    enrollment_token: str
    operator: str = "simulator"


@dataclass(frozen=True)
class Unit:
    """One Device Under Test, and what its test will say."""

    number: int
    hardware_id: str
    passes: bool
    measurements: dict[str, Any]


@dataclass(frozen=True)
class CycleOutcome:
    unit: Unit
    blessed: bool | None  # None: the cycle did not finish
    timings: dict[str, float]  # seconds per step that answered
    error: str | None = None
    stops_the_line: bool = False  # every other DUT would fail the same way


@dataclass
class LineReport:
    plan: LinePlan
    blessed: int = 0
    failed: int = 0
    errors: int = 0
    error_messages: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    client_cpu_seconds: float = 0.0
    latencies: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in (*STEPS, "cycle")})

    @property
    def completed(self) -> int:
        return self.blessed + self.failed

    @property
    def yield_percent(self) -> float:
        return 100.0 * self.blessed / self.completed if self.completed else 0.0

    @property
    def cycles_per_second(self) -> float:
        return self.completed / self.elapsed if self.elapsed > 0 else 0.0

    def percentiles_ms(self, step: str) -> tuple[float, float] | None:
        """p50 and p99 of a step in milliseconds (None when nothing was measured)."""
        return p50_p99_ms(self.latencies[step])

    def add(self, outcome: CycleOutcome) -> None:
        for step, seconds in outcome.timings.items():
            self.latencies[step].append(seconds)
        if outcome.error is not None:
            self.errors += 1
            if len(self.error_messages) < MAX_ERRORS_KEPT:
                self.error_messages.append(f"DUT {outcome.unit.number}: {outcome.error}")
        elif outcome.blessed:
            self.blessed += 1
        else:
            self.failed += 1

    def as_dict(self) -> dict[str, Any]:
        latency: dict[str, dict[str, float] | None] = {}
        for step in self.latencies:
            cuts = self.percentiles_ms(step)
            latency[step] = {"p50": round(cuts[0], 2), "p99": round(cuts[1], 2)} if cuts else None
        return {
            "count": self.plan.count,
            "fixtures": self.plan.fixtures,
            "fail_rate": self.plan.fail_rate,
            "seed": self.plan.seed,
            "completed": self.completed,
            "blessed": self.blessed,
            "failed": self.failed,
            "errors": self.errors,
            "error_messages": self.error_messages,
            "yield_percent": round(self.yield_percent, 2),
            "elapsed_seconds": round(self.elapsed, 3),
            "cycles_per_second": round(self.cycles_per_second, 2),
            "latency_ms": latency,
        }


def plan_units(plan: LinePlan) -> list[Unit]:
    """The seed decides outcomes and measurements; hardware ids are always fresh."""
    rng = random.Random(plan.seed)  # noqa: S311 -- reproducible test outcomes, not secrets
    units = []
    for number in range(1, plan.count + 1):
        passes = rng.random() >= plan.fail_rate
        measurements = {
            "supply_v": round(rng.uniform(3.25, 3.35), 3),
            "current_ma": round(rng.uniform(40.0, 60.0), 1),
            "rssi_dbm": rng.randint(-70, -40),
        }
        units.append(Unit(number, random_hardware_id(), passes, measurements))
    return units


def random_hardware_id() -> str:
    """A random locally administered unicast MAC address, as a DUT would report."""
    return ":".join(f"{byte:02x}" for byte in (0x02, *secrets.token_bytes(5)))


def run_cycle(client: FactoryClient, plan: LinePlan, unit: Unit, fixture: str) -> CycleOutcome:
    """One DUT through enroll -> test -> bless; a refusal ends its cycle with the reason."""
    timings: dict[str, float] = {}
    started = step_started = time.perf_counter()
    try:
        dut = client.enroll(plan.enrollment_token, unit.hardware_id)
        timings["enroll"] = time.perf_counter() - step_started
        step_started = time.perf_counter()
        client.record_test(
            dut.device_id,
            passed=unit.passes,
            measurements=unit.measurements,
            fixture=fixture,
            operator=plan.operator,
        )
        timings["test"] = time.perf_counter() - step_started
        step_started = time.perf_counter()
        blessing = client.bless(dut.device_id)
        timings["bless"] = time.perf_counter() - step_started
    except FactoryClientError as error:
        return CycleOutcome(unit, None, timings, error.message, _stops_the_line(error))
    timings["cycle"] = time.perf_counter() - started
    if blessing.blessed != unit.passes:
        expected = "blessed" if unit.passes else "failed"
        mismatch = f"device {dut.device_id}: bless answered {blessing.result}, expected {expected}"
        return CycleOutcome(unit, None, timings, mismatch)
    return CycleOutcome(unit, blessing.blessed, timings)


def run_line(
    plan: LinePlan,
    connect: Callable[[], FactoryClient],
    on_outcome: Callable[[CycleOutcome], None] | None = None,
) -> LineReport:
    """Run ``plan.count`` DUTs through ``plan.fixtures`` fixtures; ``on_outcome`` runs in the
    calling thread (a progress bar can use it). An unreachable server stops the whole line."""
    work: queue.SimpleQueue[Unit] = queue.SimpleQueue()
    for unit in plan_units(plan):
        work.put(unit)
    outcomes: queue.SimpleQueue[CycleOutcome] = queue.SimpleQueue()
    stop = threading.Event()

    def fixture(index: int) -> None:
        with connect() as client:
            while not stop.is_set():
                try:
                    unit = work.get_nowait()
                except queue.Empty:
                    return
                outcome = run_cycle(client, plan, unit, f"sim-fixture-{index}")
                outcomes.put(outcome)
                if outcome.stops_the_line:
                    stop.set()

    report = LineReport(plan)
    cpu, started = time.process_time(), time.perf_counter()
    with ThreadPoolExecutor(max_workers=plan.fixtures, thread_name_prefix="fixture") as pool:
        fixtures = [pool.submit(fixture, index) for index in range(1, plan.fixtures + 1)]
        try:
            _collect(outcomes, fixtures, report, on_outcome)
        except BaseException:  # Ctrl-C: fixtures finish the DUT in hand, take no more
            stop.set()
            raise
        report.elapsed = time.perf_counter() - started
        for running in fixtures:
            running.result()  # a bug in a fixture thread surfaces here, not silently
    report.client_cpu_seconds = time.process_time() - cpu
    return report


def _collect(
    outcomes: queue.SimpleQueue[CycleOutcome],
    fixtures: list[Future[None]],
    report: LineReport,
    on_outcome: Callable[[CycleOutcome], None] | None,
) -> None:
    while report.completed + report.errors < report.plan.count:
        try:
            outcome = outcomes.get(timeout=_POLL_SECONDS)
        except queue.Empty:
            if all(running.done() for running in fixtures) and outcomes.empty():
                return  # stopped early: the server went away, or a fixture thread failed
            continue
        report.add(outcome)
        if on_outcome is not None:
            on_outcome(outcome)


def _stops_the_line(error: FactoryClientError) -> bool:
    """No server, no key, or a key or enrollment token the server refuses: no DUT would pass."""
    if isinstance(error, ServerUnreachable | MissingApiKey):
        return True
    return isinstance(error, ApiRefused) and error.status in (401, 403)


# -- the command ------------------------------------------------------------------------


@click.command("simulate")
@click.option("--count", type=click.IntRange(1, 1_000_000), default=100, show_default=True, help="DUTs.")
@click.option(
    "--fail-rate",
    type=click.FloatRange(0, 1),
    default=0.05,
    show_default=True,
    help="Share of DUTs whose test fails.",
)
@click.option("--fixtures", type=click.IntRange(1, 256), default=4, show_default=True, help="In parallel.")
@click.option("--product", "product_id", help="Make a throwaway enrollment token for this product.")
@click.option(
    "--enrollment-token",
    envvar="LINESIDE_ENROLLMENT_TOKEN",
    show_envvar=True,
    help="Use this factory enrollment token instead.",
)
@click.option("--seed", type=int, help="Reproduce which DUTs fail [default: random, printed].")
@json_option
@connection_options
def simulate(
    count: int,
    fail_rate: float,
    fixtures: int,
    product_id: str | None,
    enrollment_token: str | None,
    seed: int | None,
    as_json: bool,
    server: str,
    api_key: str | None,
) -> None:
    """Run COUNT simulated DUTs through FIXTURES fixtures: yield, throughput, latency per step.

    Exit 0 when the run completed, failed DUTs included; 1 when any request went wrong.
    """
    if not (product_id or enrollment_token):
        raise click.UsageError("Give --product (a throwaway token is made) or --enrollment-token.")
    seed = secrets.randbelow(2**31) if seed is None else seed
    with factory_api(server, api_key) as api:
        throwaway = None
        if not enrollment_token:
            assert product_id is not None
            name = f"simulate {datetime.now(UTC):%Y-%m-%d %H:%M}"
            throwaway = api.create_enrollment_token(product_id, name)
            enrollment_token = throwaway.token or ""
        plan = LinePlan(count, fixtures, fail_rate, seed, enrollment_token)
        try:
            report = _run_with_progress(plan, server, api_key)
        finally:
            if throwaway is not None:
                _revoke_throwaway(api, throwaway.id)
    if as_json:
        echo_json(report.as_dict())
    else:
        _print_report(report, server)
    for message in report.error_messages:
        click.echo(f"  {message}", err=True)
    never_ran = count - report.completed - report.errors
    if report.errors or never_ran:
        stopped = f"; the line stopped and {never_ran} never ran" if never_ran else ""
        raise Refused(f"{report.errors} of {count} DUTs hit an unexpected error{stopped} (see above).")


def _revoke_throwaway(api: FactoryClient, token_id: str) -> None:
    """The simulator's own enrollment token must not outlive it; say so if it does."""
    try:
        api.revoke_enrollment_token(token_id)
    except FactoryClientError as error:
        click.echo(f"Warning: enrollment token {token_id} is not revoked: {error.message}", err=True)


def _run_with_progress(plan: LinePlan, server: str, api_key: str | None) -> LineReport:
    with click.progressbar(length=plan.count, label="DUTs", file=sys.stderr) as bar:

        def advance(_outcome: CycleOutcome) -> None:
            bar.update(1)

        return run_line(plan, lambda: FactoryClient(server, api_key), advance)


def _print_report(report: LineReport, server: str) -> None:
    plan = report.plan
    click.echo(f"line:       {plan.count} DUTs, {plan.fixtures} fixtures, fail rate {plan.fail_rate:g},")
    click.echo(f"            seed {plan.seed}, against {server}")
    click.echo(
        f"yield:      {report.blessed} blessed, {report.failed} failed"
        f" ({report.yield_percent:.1f} % blessed), {report.errors} errors"
    )
    click.echo(
        f"throughput: {report.cycles_per_second:.1f} DUT cycles/s"
        f" ({report.completed} cycles in {report.elapsed:.2f} s)"
    )
    click.echo("step        p50 ms   p99 ms")
    for step in (*STEPS, "cycle"):
        cuts = report.percentiles_ms(step)
        if cuts is not None:
            click.echo(f"{step:<10} {cuts[0]:>7.1f}  {cuts[1]:>7.1f}")
