"""``lineside devices simulate``: a fleet of simulated devices against a server, over MQTT.

Each simulated device is a ``lineside.device.DeviceClient`` with its credentials in memory:
it connects (client id = username = device id, password = its token), subscribes to its
commands, publishes telemetry, and stays connected until the whole fleet has had its turn,
like a fleet coming online after a power cut. Where the devices come from:

- ``--product ID`` (with a factory API key): N devices are defined with tokens through the
  API (``POST /api/v1/device-batches``);
- ``--csv FILE``: a file with ``device_id`` and ``token`` (or ``device_token``, as in a
  static-token export, or ``mqtt_password``) columns.

Used by ``lineside demo`` too (``run_fleet``).
"""

from __future__ import annotations

import csv
import secrets
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import click
import httpx

from lineside.device import DeviceClient, DeviceError, Flash, FlashContents
from lineside.entrypoints.cli.common import echo_json
from lineside.entrypoints.cli.factory_options import NoApiKey, Refused, connection_options
from lineside.entrypoints.cli.fleet_server import (
    CONFIRM_DEADLINE_SECONDS,
    FleetServerError,
    advertised_broker,
    confirmed,
    server_time,
)
from lineside.entrypoints.cli.latency import p50_p99_ms
from lineside.entrypoints.cli.reaching import cannot_reach

MAX_ERRORS_KEPT = 20
SECRET_COLUMNS = ("token", "device_token", "mqtt_password")


@dataclass(frozen=True)
class SimulatedDevice:
    device_id: str
    token: str | None = field(default=None, repr=False)
    mqtt_password: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class FleetPlan:
    mqtt_host: str
    mqtt_port: int
    server_url: str | None = None
    concurrency: int = 16
    messages: int = 1
    timeout: float = 10.0


@dataclass(frozen=True)
class DeviceOutcome:
    device: SimulatedDevice
    connect_seconds: float | None  # None: it never connected
    published: int
    error: str | None
    client: DeviceClient | None = field(default=None, repr=False)


@dataclass
class FleetReport:
    count: int
    connected: int = 0
    failed: int = 0
    published: int = 0
    elapsed: float = 0.0
    connect_seconds: list[float] = field(default_factory=list)
    error_messages: list[str] = field(default_factory=list)
    seen: int | None = None  # connected devices the server recorded; None: not asked

    @property
    def connected_per_second(self) -> float:
        return self.connected / self.elapsed if self.elapsed > 0 else 0.0

    def percentiles_ms(self) -> tuple[float, float] | None:
        """p50 and p99 of the connect time (to the CONNACK), in milliseconds."""
        return p50_p99_ms(self.connect_seconds)

    def add(self, outcome: DeviceOutcome) -> None:
        self.published += outcome.published
        if outcome.connect_seconds is not None:
            self.connect_seconds.append(outcome.connect_seconds)
        if outcome.error is None:
            self.connected += 1
            return
        self.failed += 1
        if len(self.error_messages) < MAX_ERRORS_KEPT:
            self.error_messages.append(f"{outcome.device.device_id}: {outcome.error}")

    def as_dict(self) -> dict[str, Any]:
        cuts = self.percentiles_ms()
        return {
            "count": self.count,
            "connected": self.connected,
            "seen_by_server": self.seen,
            "failed": self.failed,
            "published": self.published,
            "elapsed_seconds": round(self.elapsed, 3),
            "connected_per_second": round(self.connected_per_second, 2),
            "connect_ms": {"p50": round(cuts[0], 2), "p99": round(cuts[1], 2)} if cuts else None,
            "error_messages": self.error_messages,
        }


def bring_online(device: SimulatedDevice, plan: FleetPlan) -> DeviceOutcome:
    """Connect one device, subscribe to its commands, publish its telemetry; it stays online."""
    flash = Flash(
        None,
        FlashContents(
            device_id=device.device_id,
            token=device.token,
            mqtt_password=device.mqtt_password,
            server_url=plan.server_url,
            mqtt_host=plan.mqtt_host,
            mqtt_port=plan.mqtt_port,
        ),
    )
    client = DeviceClient(flash, timeout=plan.timeout)
    started = time.perf_counter()
    try:
        client.connect(subscribe=False)
    except DeviceError as error:
        client.close()
        return DeviceOutcome(device, None, 0, error.message)
    connect_seconds = time.perf_counter() - started
    published = 0
    try:
        client.subscribe_to_commands()
        for number in range(plan.messages):
            client.publish_telemetry({"sequence": number, "temperature": 20 + secrets.randbelow(50) / 10})
            published += 1
    except DeviceError as error:
        client.close()
        return DeviceOutcome(device, connect_seconds, published, error.message)
    return DeviceOutcome(device, connect_seconds, published, None, client)


def run_fleet(
    devices: list[SimulatedDevice],
    plan: FleetPlan,
    on_outcome: Callable[[DeviceOutcome], None] | None = None,
) -> FleetReport:
    """Bring every device online (``plan.concurrency`` at a time), then disconnect them all.
    ``on_outcome`` runs in the calling thread, once per device."""
    return run_fleet_keeping(devices, plan, on_outcome)[0]


def run_fleet_keeping(
    devices: list[SimulatedDevice],
    plan: FleetPlan,
    on_outcome: Callable[[DeviceOutcome], None] | None = None,
) -> tuple[FleetReport, list[SimulatedDevice]]:
    """``run_fleet``, and the devices that connected."""
    report = FleetReport(len(devices))
    connected: list[SimulatedDevice] = []
    online: list[DeviceClient] = []
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=plan.concurrency, thread_name_prefix="device") as pool:
        try:
            futures = [pool.submit(bring_online, device, plan) for device in devices]
            for future in as_completed(futures):
                outcome = future.result()
                report.add(outcome)
                if outcome.client is not None:
                    online.append(outcome.client)
                    connected.append(outcome.device)
                if on_outcome is not None:
                    on_outcome(outcome)
            report.elapsed = time.perf_counter() - started
        finally:
            for client in online:
                pool.submit(client.close)
    return report, connected


# -- where the devices come from -----------------------------------------------------------


def read_device_csv(path: Path, limit: int | None) -> list[SimulatedDevice]:
    """``device_id`` plus ``token``, ``device_token`` or ``mqtt_password`` per row."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError) as error:
        raise click.ClickException(f"Cannot read {path}: {error}") from None
    devices = []
    for number, row in enumerate(rows, start=2):
        device_id = (row.get("device_id") or "").strip()
        token = (row.get("token") or row.get("device_token") or "").strip() or None
        password = (row.get("mqtt_password") or "").strip() or None
        if not device_id or not (token or password):
            columns = ", ".join(SECRET_COLUMNS)
            raise click.ClickException(f"{path} row {number}: needs device_id and one of {columns}.")
        devices.append(SimulatedDevice(device_id, token, password))
    return devices[:limit] if limit is not None else devices


def define_devices(server: str, api_key: str, product_id: str, count: int) -> list[SimulatedDevice]:
    """``count`` new devices of ``product_id`` with tokens, defined in one batch over the API."""
    prefix = f"sim-{secrets.token_hex(4)}"
    body = {
        "product_id": product_id,
        "serial_numbers": [f"{prefix}-{number:06d}" for number in range(1, count + 1)],
        "issue_credentials": "token",
    }
    try:
        response = httpx.post(
            f"{server.rstrip('/')}/api/v1/device-batches",
            json=body,
            headers={"authorization": f"Bearer {api_key}"},
            timeout=300.0,
        )
    except httpx.HTTPError as error:
        raise Refused(cannot_reach(server, error)) from None
    if response.status_code != 201:
        raise Refused(f"Defining devices was refused ({response.status_code}): {_detail(response)}")
    return [
        SimulatedDevice(row["id"], (row.get("credential") or {}).get("secret"))
        for row in response.json()["devices"]
    ]


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail") or response.text)
    except (ValueError, AttributeError):
        return response.text[:200]


# -- the command ---------------------------------------------------------------------------


@click.command("simulate")
@click.option(
    "--count", type=click.IntRange(1, 100_000), help="Devices [--product: required; --csv: all rows]."
)
@click.option("--product", "product_id", help="Define COUNT devices with tokens in this product first.")
@click.option(
    "--csv",
    "csv_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Or take devices from this CSV (device_id and token, device_token or mqtt_password).",
)
@click.option("--mqtt-host", help="The MQTT broker [default: the one the server names].")
@click.option("--mqtt-port", type=click.IntRange(1, 65535), help="Its port [default: the server's].")
@click.option("--concurrency", type=click.IntRange(1, 1024), default=16, show_default=True)
@click.option("--messages", type=click.IntRange(0, 10_000), default=1, show_default=True, help="Per device.")
@click.option(
    "--confirm-seconds",
    type=click.FloatRange(0, 600),
    default=CONFIRM_DEADLINE_SECONDS,
    show_default=True,
    help="How long to wait for the server to record every connection.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@connection_options
def simulate(
    count: int | None,
    product_id: str | None,
    csv_path: Path | None,
    mqtt_host: str | None,
    mqtt_port: int | None,
    concurrency: int,
    messages: int,
    confirm_seconds: float,
    as_json: bool,
    server: str,
    api_key: str | None,
) -> None:
    """Run a fleet of simulated devices over MQTT: connected/s, p50/p99 connect time, errors.

    The broker is the one the server names (GET /device/v1/me), unless --mqtt-host and
    --mqtt-port say otherwise, and a device counts as connected only once the server has
    recorded it. Exit 0 when every device connected, published and was seen; 1 otherwise.
    """
    devices = _fleet_source(count, product_id, csv_path, server, api_key)
    probe = next((device.token for device in devices if device.token), None)
    plan, since = _plan(server, probe, mqtt_host, mqtt_port, concurrency, messages)
    with click.progressbar(length=len(devices), label="devices", file=sys.stderr) as bar:
        report, connected = run_fleet_keeping(devices, plan, lambda _outcome: bar.update(1))
    report.seen = _seen(server, connected, since, confirm_seconds)
    if as_json:
        echo_json(report.as_dict())
    else:
        for line in report_lines(report, plan):
            click.echo(line)
    for message in report.error_messages:
        click.echo(f"  {message}", err=True)
    if report.failed:
        raise Refused(f"{report.failed} of {report.count} devices failed (see above).")
    if report.seen is None or report.seen < report.connected:
        raise Refused(_unseen_reason(report))


def _plan(
    server: str, probe: str | None, host: str | None, port: int | None, concurrency: int, messages: int
) -> tuple[FleetPlan, datetime | None]:
    """Where to connect, and the server's time before the first connection."""
    since: datetime | None = None
    try:
        if host is None or port is None:
            if probe is None:
                raise FleetServerError(
                    "No device has a token to ask the server with: give --mqtt-host and --mqtt-port."
                )
            broker = advertised_broker(server, probe)
            host, port, since = host or broker.host, port or broker.port, broker.server_time
        elif probe is not None:
            since = server_time(server, probe)
    except FleetServerError as error:
        raise Refused(str(error)) from None
    return FleetPlan(host, port, server, concurrency, messages), since


def _seen(server: str, connected: list[SimulatedDevice], since: datetime | None, wait: float) -> int | None:
    tokens = [device.token for device in connected if device.token]
    if since is None or len(tokens) < len(connected):
        return None  # a device with only an MQTT password cannot ask the server about itself
    return confirmed(server, tokens, since, wait)


def _unseen_reason(report: FleetReport) -> str:
    if report.seen is None:
        return (
            f"{report.connected} devices connected, but the server could not be asked whether it saw "
            "them (they have no device token): check their state in the API."
        )
    return (
        f"{report.connected} devices connected but the server saw only {report.seen}: "
        "is --mqtt-host/--mqtt-port this server's broker?"
    )


def _fleet_source(
    count: int | None, product_id: str | None, csv_path: Path | None, server: str, api_key: str | None
) -> list[SimulatedDevice]:
    if bool(product_id) == bool(csv_path):
        raise click.UsageError("Give either --product (devices are defined) or --csv (devices exist).")
    if csv_path is not None:
        return read_device_csv(csv_path, count)
    if count is None:
        raise click.UsageError("--product needs --count.")
    if not api_key:
        raise NoApiKey("--product needs a factory API key: pass --api-key or set LINESIDE_API_KEY.")
    assert product_id is not None
    return define_devices(server, api_key, product_id, count)


def report_lines(report: FleetReport, plan: FleetPlan) -> Iterator[str]:
    yield f"fleet:      {report.count} devices against mqtt://{plan.mqtt_host}:{plan.mqtt_port}"
    yield f"connected:  {report.connected}, failed {report.failed}, {report.published} messages published"
    seen = "not asked (no device token)" if report.seen is None else f"{report.seen} of {report.connected}"
    yield f"seen:       {seen} by the server"
    yield f"rate:       {report.connected_per_second:.1f} connected/s ({report.elapsed:.2f} s)"
    cuts = report.percentiles_ms()
    if cuts is not None:
        yield f"connect:    p50 {cuts[0]:.1f} ms, p99 {cuts[1]:.1f} ms"
