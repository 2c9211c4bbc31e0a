"""The demo's story, told through the public HTTP API and MQTT only (after the operator
makes the first organization, as ``lineside org create`` would).

Two products: a thermostat made on a connected factory line (enroll, test, bless; blessed
units activate with a production token and fetch their application firmware) and a plug
sold with static tokens (a batch export with one QR label a unit; units activate on their
first MQTT connection and their owners claim them by scanning the label).
"""

from __future__ import annotations

import csv
import io
import secrets
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lineside.device import DeviceClient, DeviceError, Flash
from lineside.entrypoints.cli.demo_env import DemoFailed, DemoWorld, wait_for
from lineside.entrypoints.cli.demo_http import DemoApi
from lineside.entrypoints.cli.factory_client import FactoryClient, FactoryClientError
from lineside.entrypoints.cli.factory_simulation import LinePlan, LineReport, plan_units, run_line
from lineside.entrypoints.cli.simulate import FleetPlan, FleetReport, SimulatedDevice, run_fleet
from lineside.services.organizations import create_organization

FIXTURES = 4
FAIL_RATE = 0.2
FIRMWARE_VERSION = "1.0.0"
DELIVERY_DEADLINE_SECONDS = 30.0
ACTIVATION_DEADLINE_SECONDS = 20.0

Echo = Callable[[str], None]


@dataclass
class Unit:
    """A unit of the static-token batch: its export row and its QR label."""

    device_id: str
    serial_number: str
    token: str = field(repr=False)
    label_png: bytes = field(repr=False)


@dataclass
class StoryState:
    """What the story has learnt so far (keys, ids, results)."""

    admin_key: str = ""
    factory_key: str = ""
    thermostat_id: str = ""
    plug_id: str = ""
    line: LineReport | None = None
    activated: list[SimulatedDevice] = field(default_factory=list)
    firmware_updated: int = 0
    units: list[Unit] = field(default_factory=list)
    fleet: FleetReport | None = None
    claimed: int = 0
    unclaimed: int = 0
    expected_webhooks: dict[str, int] = field(default_factory=dict)
    console_email: str = ""
    console_password: str = ""
    organization_id: str = ""


def make_manufacturer(world: DemoWorld, state: StoryState) -> str:
    """The operator's one step (no API can make a top-level organization), then a line key."""
    created = create_organization(world.application.services, f"Demo Devices {secrets.token_hex(2)}")
    state.admin_key = created.admin_key.secret
    with DemoApi(world.api_url, state.admin_key) as api:
        key = api.json("POST", "/api/v1/api-keys", 201, json={"name": "Line 1", "scopes": ["factory"]})
    state.factory_key = key["key"]
    state.organization_id = created.organization.id
    _console_person(world, state)
    return (
        f"organization {created.organization.name!r}, an admin key, a factory-scoped key for the line"
        f" and {state.console_email}, an admin of it in the console"
    )


def _console_person(world: DemoWorld, state: StoryState) -> None:
    """Someone who can look around the console afterwards: an account invited as an admin."""
    state.console_email = f"maker-{secrets.token_hex(3)}@demo.invalid"
    state.console_password = secrets.token_urlsafe(12)
    account = {"email": state.console_email, "password": state.console_password}
    with DemoApi(world.api_url) as api:
        api.json("POST", "/api/v1/users", 201, json=account)
        token = api.json("POST", "/api/v1/auth/token", 200, json=account)["access_token"]
    with DemoApi(world.api_url, state.admin_key) as api:
        path = f"/api/v1/organizations/{state.organization_id}/invitations"
        invited = api.json("POST", path, 201, json={"email": state.console_email, "role": "admin"})
    with DemoApi(world.api_url, token) as api:
        api.json("POST", "/api/v1/invitations/accept", 200, json={"code": invited["code"]})


def make_products(world: DemoWorld, state: StoryState) -> str:
    with DemoApi(world.api_url, state.admin_key) as api:
        thermostat = api.json(
            "POST", "/api/v1/products", 201, json={"name": "Demo Thermostat", "requires_blessing": True}
        )
        state.thermostat_id = thermostat["id"]
        base = f"/api/v1/products/{state.thermostat_id}"
        api.json("POST", f"{base}/groups", 201, json={"name": "Line", "kind": "factory"})
        production = api.json(
            "POST", f"{base}/groups", 201, json={"name": "Production", "kind": "production"}
        )
        release = api.json(
            "POST",
            f"{base}/firmware-releases",
            201,
            params={"kind": "application", "version": FIRMWARE_VERSION},
            content=secrets.token_bytes(16 * 1024),
            headers={"content-type": "application/octet-stream"},
        )
        api.json(
            "POST",
            f"/api/v1/device-groups/{production['id']}/deployments",
            201,
            json={"release_id": release["id"]},
        )
        plug = api.json(
            "POST", "/api/v1/products", 201, json={"name": "Demo Plug", "requires_blessing": False}
        )
        state.plug_id = plug["id"]
    return (
        f"Demo Thermostat (factory + production groups, application {FIRMWARE_VERSION} deployed)"
        " and Demo Plug (static tokens)"
    )


def register_webhook(world: DemoWorld, state: StoryState) -> str:
    with DemoApi(world.api_url, state.admin_key) as api:
        body = {"url": world.webhook_url, "event_types": ["*"], "description": "the demo's receiver"}
        api.json("POST", "/api/v1/webhooks", 201, json=body)
    return f"every event type to {world.webhook_url}"


def run_factory_line(world: DemoWorld, state: StoryState, count: int) -> str:
    try:
        with FactoryClient(world.api_url, state.factory_key) as line:
            token = line.create_enrollment_token(state.thermostat_id, "Demo line").token or ""
            plan = LinePlan(count, FIXTURES, FAIL_RATE, _seed_with_failures(count), token, operator="demo")
            report = run_line(plan, lambda: FactoryClient(world.api_url, state.factory_key))
    except FactoryClientError as error:
        raise DemoFailed(f"factory line: {error.message}") from None
    if report.errors:
        raise DemoFailed(f"factory line: {report.errors} units hit errors: {report.error_messages[0]}")
    state.line = report
    return f"{report.blessed} blessed (green), {report.failed} failed test (red) on {FIXTURES} fixtures"


def _seed_with_failures(count: int) -> int:
    """A seed under which some units, but not all, fail their test (when count allows)."""
    for seed in range(1000):
        failures = sum(not unit.passes for unit in plan_units(LinePlan(count, 1, FAIL_RATE, seed, "")))
        if 0 < failures < count or count < 2:
            return seed
    return 0


def activate_blessed(world: DemoWorld, state: StoryState) -> str:
    """Each blessed unit spends a production token, then updates its firmware (SDK, HTTP)."""
    with DemoApi(world.api_url, state.admin_key) as api:
        blessed = [d["id"] for d in api.devices(product_id=state.thermostat_id, state="blessed")]
    flash_dir = world.directory / "flash"
    try:
        with FactoryClient(world.api_url, state.factory_key) as line:
            for device_id in blessed:
                token = line.create_production_token(state.thermostat_id)
                flash = Flash(flash_dir / f"{device_id}.json")
                with DeviceClient(flash, server_url=world.api_url) as device:
                    device.activate(token.plan_id, token.token_id, device_id)
                    state.firmware_updated += _update_firmware(device)
                state.activated.append(SimulatedDevice(device_id, flash.read().token))
    except (FactoryClientError, DeviceError) as error:
        raise DemoFailed(f"activation: {error.message}") from None
    return (
        f"{len(blessed)} activated with production tokens; {state.firmware_updated} downloaded"
        f" application {FIRMWARE_VERSION} (SHA-256 checked) and reported it; credentials in {flash_dir}"
    )


def _update_firmware(device: DeviceClient) -> int:
    status = device.check_firmware()
    if status.release is None or not status.update_available:
        return 0
    device.download_firmware(status.release)
    device.report_firmware(status.release.version)
    return 1


def make_static_tokens(world: DemoWorld, state: StoryState, count: int) -> str:
    with DemoApi(world.api_url, state.admin_key) as api:
        batch = api.json(
            "POST", f"/api/v1/products/{state.plug_id}/static-tokens", 201, json={"count": count}
        )
        export = api.call("GET", batch["export_url"]).content
    with zipfile.ZipFile(io.BytesIO(export)) as archive:
        rows = list(csv.DictReader(io.StringIO(archive.read("tokens.csv").decode())))
        state.units = [
            Unit(
                row["device_id"],
                row["serial_number"],
                row["device_token"],
                archive.read(f"qr/{row['serial_number']}.png"),
            )
            for row in rows
        ]
    if len(state.units) != count:
        raise DemoFailed(f"static tokens: the export holds {len(state.units)} units, not {count}")
    return (
        f"{count} units in batch {batch['batch_id']}: tokens.csv and a QR label each ({len(export):,} bytes)"
    )


def bring_fleet_online(world: DemoWorld, state: StoryState) -> str:
    """Every activated thermostat and every plug connects over MQTT and publishes telemetry;
    the plugs activate on that first connection."""
    devices = state.activated + [SimulatedDevice(unit.device_id, unit.token) for unit in state.units]
    plan = FleetPlan(world.mqtt_host, world.mqtt_port, world.api_url, concurrency=8, messages=1)
    fleet = run_fleet(devices, plan)
    state.fleet = fleet
    if fleet.failed:
        raise DemoFailed(f"MQTT: {fleet.failed} devices failed: {fleet.error_messages[0]}")
    with DemoApi(world.api_url, state.admin_key) as api:
        wait_for(
            lambda: api.count_devices(product_id=state.plug_id, state="activated") == len(state.units),
            ACTIVATION_DEADLINE_SECONDS,
            "the plugs to activate on their first MQTT connection",
        )
    cuts = fleet.percentiles_ms() or (0.0, 0.0)
    return (
        f"{fleet.connected} devices connected ({fleet.connected_per_second:.0f}/s, p50 {cuts[0]:.1f} ms,"
        f" p99 {cuts[1]:.1f} ms), {fleet.published} telemetry messages; {len(state.units)} plugs activated"
    )


def expected_webhooks(state: StoryState) -> dict[str, int]:
    line = state.line or LineReport(LinePlan(0, 1, 0, 0, ""))
    return {
        "device.enrolled": line.completed,
        "device.tested": line.completed,
        "device.blessed": line.blessed,
        "device.failed": line.failed,
        "device.activated": len(state.activated) + len(state.units),
        "device.claimed": state.claimed,
        "device.unclaimed": state.unclaimed,
    }


def await_webhooks(world: DemoWorld, state: StoryState) -> str:
    expected = {kind: n for kind, n in expected_webhooks(state).items() if n}
    state.expected_webhooks = expected

    def all_arrived() -> bool:
        return all(world.inbox.count(kind) >= n for kind, n in expected.items())

    wait_for(all_arrived, DELIVERY_DEADLINE_SECONDS, f"webhook deliveries {expected}")
    return f"{sum(world.inbox.snapshot().values())} deliveries, every expected one among them"


def timed(step: Callable[[], str]) -> tuple[str, float]:
    started = time.perf_counter()
    summary = step()
    return summary, time.perf_counter() - started


def funnel_from_server(world: DemoWorld, state: StoryState) -> dict[str, dict[str, Any]]:
    """Device counts per state, as the API reports them at the end."""
    with DemoApi(world.api_url, state.admin_key) as api:
        return {
            product: {
                "defined": api.count_devices(product_id=product_id),
                "activated": api.count_devices(product_id=product_id, state="activated"),
                "failed": api.count_devices(product_id=product_id, state="failed"),
            }
            for product, product_id in (("thermostat", state.thermostat_id), ("plug", state.plug_id))
        }
