"""``lineside devices simulate`` against the real API and the embedded broker, both backends."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result

from lineside.bootstrap import Application
from lineside.entrypoints.cli.main import cli
from tests.support.api import Tenant, ok
from tests.support.factory import keyed
from tests.support.mqtt import embedded_broker, wait_for


@pytest.fixture(scope="module")
def broker(application: Application) -> Iterator[tuple[str, int]]:
    with embedded_broker(application) as address:
        yield address


def simulate(client: httpx.Client, broker: tuple[str, int], *args: str, api_key: str = "") -> Result:
    host, port = broker
    env = {
        "LINESIDE_SERVER": str(client.base_url),
        "LINESIDE_API_KEY": api_key,
        "LINESIDE_MQTT_PORT": str(port),
    }
    result = CliRunner().invoke(cli, ["devices", "simulate", "--mqtt-host", host, *args], env=env)
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
