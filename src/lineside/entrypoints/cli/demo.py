"""``lineside demo``: the whole story, from factory line to owner, on a private server.

It needs nothing but this package: a temporary data directory and SQLite database, the API
and the embedded MQTT broker on free loopback ports, and a local webhook receiver. Then,
through the public HTTP API and MQTT only: a manufacturer, two products, a webhook
endpoint, a simulated factory line (some units fail), activation of the blessed units with
production tokens (and their firmware update), a static-token batch whose units come
online over MQTT and activate, owners who claim units by decoding their QR labels, an
unclaim, and the webhooks of it all. It ends with a report and exit status 0, or one line
saying which stage failed and why, and exit status 1.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import click

from lineside.device import DeviceError
from lineside.entrypoints.cli.common import echo_json
from lineside.entrypoints.cli.demo_env import DemoFailed, DemoWorld, demo_world
from lineside.entrypoints.cli.demo_owners import claim_by_qr
from lineside.entrypoints.cli.demo_story import (
    FIRMWARE_VERSION,
    StoryState,
    activate_blessed,
    await_webhooks,
    bring_fleet_online,
    funnel_from_server,
    make_manufacturer,
    make_products,
    make_static_tokens,
    register_webhook,
    run_factory_line,
    timed,
)

Stage = tuple[str, Callable[[], str]]


def _stages(world: DemoWorld, state: StoryState, devices: int) -> list[Stage]:
    on_the_line = devices // 2
    return [
        ("a manufacturer", lambda: make_manufacturer(world, state)),
        ("products, groups, firmware", lambda: make_products(world, state)),
        ("a webhook endpoint", lambda: register_webhook(world, state)),
        ("the factory line", lambda: run_factory_line(world, state, on_the_line)),
        ("activation of blessed units", lambda: activate_blessed(world, state)),
        ("static tokens for the plug", lambda: make_static_tokens(world, state, devices - on_the_line)),
        ("devices online over MQTT", lambda: bring_fleet_online(world, state)),
        ("owners claim by QR code", lambda: claim_by_qr(world, state)),
        ("webhooks delivered", lambda: await_webhooks(world, state)),
    ]


@click.command()
@click.option(
    "--devices",
    type=click.IntRange(2, 2000),
    default=20,
    show_default=True,
    help="Units in all: half on the factory line, half with static tokens.",
)
@click.option("--keep", is_flag=True, help="Keep the temporary data directory (database, flash files).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (progress goes to stderr).")
@click.option(
    "--stay", is_flag=True, help="Keep the server up afterwards, to look around the console (Ctrl-C ends it)."
)
def demo(devices: int, keep: bool, as_json: bool, stay: bool) -> None:
    """The whole story in one command, on a private server that goes away afterwards."""

    def say(line: str) -> None:
        click.echo(line, err=as_json)

    state = StoryState()
    timings: list[tuple[str, float]] = []
    stage = "setting up"
    try:
        with demo_world(keep=keep) as world:
            say(
                f"Lineside demo: {devices} devices;"
                f" API {world.api_url}, MQTT {world.mqtt_host}:{world.mqtt_port}"
            )
            stages = _stages(world, state, devices)
            for number, (stage, step) in enumerate(stages, start=1):
                say(f"[{number}/{len(stages)}] {stage}")
                summary, seconds = timed(step)
                timings.append((stage, seconds))
                say(f"      {summary} ({seconds:.2f} s)")
            stage = "the final count"
            report = build_report(world, state, devices, timings, keep)
            report["console"] = {
                "url": f"{world.api_url}/console/{state.organization_id}",
                "email": state.console_email,
                "password": state.console_password,
            }
            if stay:
                _show_report(report, as_json)
                _stay_until_interrupted(report["console"]["url"])
                return
    except (DemoFailed, DeviceError) as error:
        raise click.ClickException(f"demo failed at {stage}: {error}") from None
    except (OSError, RuntimeError) as error:  # a port taken, the broker not starting
        raise click.ClickException(f"demo failed at {stage}: {error.__class__.__name__}: {error}") from None
    _show_report(report, as_json)
    click.echo(
        "(The demo's server is gone now: `lineside demo --stay` keeps it up to look around.)", err=as_json
    )


def _show_report(report: dict[str, Any], as_json: bool) -> None:
    if as_json:
        echo_json(report)
    else:
        for line in report_lines(report):
            click.echo(line)
    sys.stdout.flush()


def _stay_until_interrupted(url: str) -> None:
    """Serve until Ctrl-C or SIGTERM. The handlers are set here, not inherited: a process
    started in the background by a shell begins with SIGINT ignored."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda _signum, _frame: stop.set())
    click.echo(f"Serving until Ctrl-C: {url}", err=True)
    stop.wait()
    click.echo("Stopped.", err=True)


def build_report(
    world: DemoWorld, state: StoryState, devices: int, timings: list[tuple[str, float]], keep: bool
) -> dict[str, Any]:
    """The funnel as the server counts it, checked against what the story did."""
    line, fleet = state.line, state.fleet
    assert line is not None and fleet is not None
    counted = funnel_from_server(world, state)
    thermostat, plug = counted["thermostat"], counted["plug"]
    _require(
        thermostat["defined"] == line.completed, "thermostats defined", thermostat["defined"], line.completed
    )
    _require(
        thermostat["activated"] == line.blessed,
        "thermostats activated",
        thermostat["activated"],
        line.blessed,
    )
    _require(thermostat["failed"] == line.failed, "thermostats failed", thermostat["failed"], line.failed)
    _require(plug["activated"] == len(state.units), "plugs activated", plug["activated"], len(state.units))
    cuts = fleet.percentiles_ms() or (0.0, 0.0)
    return {
        "devices": devices,
        "funnel": {
            "defined": {"thermostat": thermostat["defined"], "plug": plug["defined"]},
            "tested": {"thermostat": line.completed, "plug": None},
            "blessed": {"thermostat": line.blessed, "plug": None},
            "activated": {"thermostat": thermostat["activated"], "plug": plug["activated"]},
            "claimed": {"thermostat": None, "plug": state.claimed},
        },
        "unclaimed": state.unclaimed,
        "factory": {
            "tested": line.completed,
            "passed": line.blessed,
            "failed": line.failed,
            "yield_percent": round(line.yield_percent, 1),
        },
        "mqtt": {
            "connected": fleet.connected,
            "failed": fleet.failed,
            "published": fleet.published,
            "connected_per_second": round(fleet.connected_per_second, 1),
            "connect_ms": {"p50": round(cuts[0], 2), "p99": round(cuts[1], 2)},
        },
        "firmware": {"version": FIRMWARE_VERSION, "updated": state.firmware_updated},
        "webhooks": dict(sorted(world.inbox.snapshot().items())),
        "webhooks_expected": state.expected_webhooks,
        "timings_seconds": {name: round(seconds, 3) for name, seconds in timings},
        "data_dir": str(world.directory) if keep else None,
    }


def _require(holds: bool, what: str, counted: int, expected: int) -> None:
    if not holds:
        raise DemoFailed(f"the server counts {counted} {what}, the story expected {expected}")


def report_lines(report: dict[str, Any]) -> Iterator[str]:
    funnel = report["funnel"]
    yield ""
    yield f"{'funnel':<20}{'thermostat':>12}{'plug':>8}{'total':>8}"
    for step in ("defined", "tested", "blessed", "activated", "claimed"):
        row = funnel[step]
        cells = [row["thermostat"], row["plug"]]
        total = sum(cell for cell in cells if cell is not None)
        shown = "".join(
            f"{'-' if cell is None else cell:>{w}}" for cell, w in zip(cells, (12, 8), strict=True)
        )
        yield f"  {step:<18}{shown}{total:>8}"
    yield f"  (then {report['unclaimed']} unclaimed by its owner)"
    factory, mqtt = report["factory"], report["mqtt"]
    yield (
        f"{'factory yield':<20}{factory['passed']} of {factory['tested']} passed"
        f" ({factory['yield_percent']:.1f} %), {factory['failed']} failed test"
    )
    yield (
        f"{'MQTT':<20}{mqtt['connected']} connected, {mqtt['connected_per_second']:.0f}/s, p50"
        f" {mqtt['connect_ms']['p50']:.1f} ms, p99 {mqtt['connect_ms']['p99']:.1f} ms,"
        f" {mqtt['published']} telemetry messages"
    )
    firmware = report["firmware"]
    yield f"{'firmware':<20}{firmware['updated']} thermostats updated to {firmware['version']} (SHA-256 ok)"
    yield f"{'webhooks received':<20}" + ", ".join(f"{kind} {n}" for kind, n in report["webhooks"].items())
    timings = report["timings_seconds"]
    yield f"{'timings (s)':<20}" + ", ".join(f"{name} {seconds:.2f}" for name, seconds in timings.items())
    yield f"{'':<20}total {sum(timings.values()):.2f}"
    if report["data_dir"]:
        yield f"{'data kept in':<20}{report['data_dir']}"
    console = report.get("console")
    if console:
        yield f"{'console':<20}{console['url']}"
        yield f"{'':<20}sign in as {console['email']}, password {console['password']}"
