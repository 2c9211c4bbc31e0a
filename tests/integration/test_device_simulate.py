"""``lineside devices simulate`` against the real API and the embedded broker, both backends."""

from __future__ import annotations

import csv
import json
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result

from lineside.bootstrap import Application, bootstrap
from lineside.entrypoints.cli.main import cli
from tests.support.api import Tenant, ok
from tests.support.factory import keyed
from tests.support.mqtt import embedded_broker, wait_for
from tests.support.server import free_port, http_client_for


@pytest.fixture(scope="module")
def broker(application: Application) -> Iterator[tuple[str, int]]:
    with embedded_broker(application) as address:
        yield address


def simulate(client: httpx.Client, broker: tuple[str, int], *args: str, api_key: str = "") -> Result:
    host, port = broker
    env = {"LINESIDE_SERVER": str(client.base_url), "LINESIDE_API_KEY": api_key}
    where = ["--mqtt-host", host, "--mqtt-port", str(port)]
    result = CliRunner().invoke(cli, ["devices", "simulate", *where, *args], env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def states(tenant: Tenant, product_id: str) -> list[str]:
    items = ok(tenant.get("/api/v1/devices", params={"product_id": product_id, "limit": 1000}))["items"]
    return sorted(item["state"] for item in items)


def test_a_defined_fleet_connects_publishes_and_activates(
    tenant: Tenant, client: httpx.Client, broker: tuple[str, int]
) -> None:
    product = tenant.product()
    line = keyed(tenant, "factory")
    result = simulate(
        client, broker, "--product", product["id"], "--count", "12", "--concurrency", "4",
        "--messages", "2", "--json", api_key=line.api_key,
    )  # fmt: skip
    assert result.exit_code == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert (report["count"], report["connected"], report["failed"], report["published"]) == (12, 12, 0, 24)
    assert report["connect_ms"]["p50"] <= report["connect_ms"]["p99"]
    assert report["error_messages"] == []
    wait_for(lambda: states(tenant, product["id"]) == ["activated"] * 12, what="12 activations on connect")


def test_a_device_that_cannot_connect_fails_the_run(
    tenant: Tenant, client: httpx.Client, broker: tuple[str, int], tmp_path: Path
) -> None:
    product = tenant.product()
    good = tenant.device(product["id"])["id"]
    bad = tenant.device(product["id"])["id"]
    path = tmp_path / "fleet.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["device_id", "device_token"])
        writer.writerow([good, tenant.token(good)])
        writer.writerow([bad, "lsd_wrong"])
    result = simulate(client, broker, "--csv", str(path))
    assert result.exit_code == 1, result.stdout + result.stderr
    assert "connected:  1, failed 1" in result.stdout
    assert f"{bad}: the MQTT broker refused the connection" in result.stderr
    assert result.stderr.strip().splitlines()[-1] == "Error: 1 of 2 devices failed (see above)."
    assert "lsd_wrong" not in result.stdout + result.stderr


def test_the_source_of_devices_must_be_given_once(client: httpx.Client, broker: tuple[str, int]) -> None:
    result = simulate(client, broker, "--count", "3")
    assert result.exit_code == 2
    assert "Give either --product" in result.stderr
    no_key = simulate(client, broker, "--product", "p", "--count", "3")
    assert no_key.exit_code == 2
    assert no_key.stderr.strip().splitlines() == [
        "Error: --product needs a factory API key: pass --api-key or set LINESIDE_API_KEY."
    ]


@pytest.fixture(scope="module")
def advertising_client(application: Application, broker: tuple[str, int]) -> Iterator[httpx.Client]:
    """A server on the same database that names the embedded broker as its MQTT address."""
    host, port = broker
    settings = application.settings.model_copy(update={"mqtt_public_url": f"mqtt://{host}:{port}"})
    app = bootstrap(settings)
    with http_client_for(app) as http:
        yield http
    app.close()


def test_the_fleet_finds_the_broker_the_server_names_and_the_server_confirms_it(
    tenant: Tenant, advertising_client: httpx.Client
) -> None:
    product = tenant.product()
    line = keyed(tenant, "factory")
    env = {"LINESIDE_SERVER": str(advertising_client.base_url), "LINESIDE_API_KEY": line.api_key}
    args = ["devices", "simulate", "--product", product["id"], "--count", "5", "--json"]

    result = CliRunner().invoke(cli, args, env=env)

    assert result.exit_code == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert (report["connected"], report["seen_by_server"]) == (5, 5)


@pytest.fixture
def another_broker(tmp_path: Path) -> Iterator[int]:
    """A Mosquitto that lets anyone in: not the server's broker."""
    port = free_port()
    config = tmp_path / "mosquitto.conf"
    config.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
    process = subprocess.Popen(
        ["mosquitto", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for(lambda: _listening(port), what="mosquitto to listen")
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_a_fleet_sent_to_another_broker_is_not_reported_connected(
    tenant: Tenant, client: httpx.Client, another_broker: int
) -> None:
    product = tenant.product()
    line = keyed(tenant, "factory")
    result = simulate(
        client,
        ("127.0.0.1", another_broker),
        "--product",
        product["id"],
        "--count",
        "3",
        api_key=line.api_key,
    )

    assert result.exit_code == 1
    assert "seen:       0 of 3 by the server" in result.stdout
    assert "the server saw only 0" in result.stderr
    assert states(tenant, product["id"]) == ["defined"] * 3


def test_a_device_learns_its_presence_and_where_mqtt_is_from_me(
    tenant: Tenant, advertising_client: httpx.Client, broker: tuple[str, int]
) -> None:
    device_id = tenant.device(tenant.product()["id"])["id"]
    token = tenant.token(device_id)
    me = ok(advertising_client.get("/device/v1/me", headers={"Authorization": f"Bearer {token}"}))
    assert me["mqtt_url"] == f"mqtt://{broker[0]}:{broker[1]}"
    assert (me["online"], me["last_seen_at"]) == (False, None)
