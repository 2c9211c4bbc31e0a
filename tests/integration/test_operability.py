"""What an operator watches: /metrics in Prometheus text format (open, behind a token, or
off), /healthz and /readyz."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from lineside.bootstrap import Application, bootstrap
from lineside.settings import Settings
from tests.support.api import Tenant, assert_problem
from tests.support.mqtt import embedded_broker, mqtt_client
from tests.support.server import free_port, http_client_for

METRICS_TOKEN = "scrape-me-please"


Scrape = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Scrape:
    """Every sample of a scrape, keyed by name and sorted labels."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(scrape: Scrape, name: str, **labels: str) -> float:
    return scrape.get((name, tuple(sorted(labels.items()))), 0.0)


def grew(before: Scrape, after: Scrape, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def scrape(http: httpx.Client, **headers: str) -> Scrape:
    response = http.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return samples(response.text)


def test_requests_are_counted_by_route_template_status_and_timed(
    client: httpx.Client, tenant: Tenant
) -> None:
    device_id = tenant.device(tenant.product()["id"])["id"]
    route = "/api/v1/devices/{device_id}"
    before = scrape(client)

    for _ in range(3):
        assert tenant.get(f"/api/v1/devices/{device_id}").status_code == 200
    assert tenant.get("/api/v1/devices/not-a-device").status_code == 404
    after = scrape(client)

    ok = {"method": "GET", "route": route, "status": "200"}
    assert (
        value(after, "lineside_http_requests_total", **ok)
        - value(before, "lineside_http_requests_total", **ok)
        == 3
    )
    missing = {"method": "GET", "route": route, "status": "404"}
    assert value(after, "lineside_http_requests_total", **missing) >= 1
    timed = value(after, "lineside_http_request_duration_seconds_count", method="GET", route=route)
    assert (
        timed - value(before, "lineside_http_request_duration_seconds_count", method="GET", route=route) == 4
    )
    assert not any(device_id in str(key) for key in after)  # never a series per id


def test_routes_of_nested_routers_are_labelled_by_their_whole_template(client: httpx.Client) -> None:
    before = scrape(client)
    client.post("/broker/emqx/authenticate", json={"clientid": "x", "username": "x", "password": "x"})
    after = scrape(client)
    labels = {"method": "POST", "route": "/broker/emqx/authenticate", "status": "200"}
    assert grew(before, after, "lineside_http_requests_total", **labels) == 1


def test_domain_events_devices_by_state_and_the_webhook_backlog_are_exposed(
    client: httpx.Client, tenant: Tenant
) -> None:
    before = scrape(client)
    product_id = tenant.product()["id"]
    for _ in range(2):
        tenant.device(product_id)
    after = scrape(client)

    defined = "device.defined"
    assert (
        value(after, "lineside_events_total", type=defined)
        - value(before, "lineside_events_total", type=defined)
        == 2
    )
    assert value(after, "lineside_devices", state="defined") >= 2
    assert ("lineside_webhook_queue_depth", ()) in after
    assert ("lineside_webhook_queue_oldest_age_seconds", ()) in after
    assert ("lineside_db_connections_in_use", ()) in after


def test_mqtt_connections_and_refusals_are_counted(
    application: Application, tenant: Tenant, client: httpx.Client
) -> None:
    device_id = tenant.device(tenant.product()["id"])["id"]
    token = tenant.token(device_id)
    before = samples(application.metrics.exposition().decode())

    with embedded_broker(application) as (host, port):
        with mqtt_client(host, port, device_id, password=token) as device:
            assert device.connack_rc == 0
            during = samples(application.metrics.exposition().decode())
        with mqtt_client(host, port, device_id, password="lsd_wrong") as refused:
            assert refused.connack_rc != 0
    after = samples(application.metrics.exposition().decode())

    assert grew(before, after, "lineside_mqtt_connects_total", result="accepted") == 1
    assert grew(before, after, "lineside_mqtt_connects_total", result="not_authorized") == 1
    assert grew(before, during, "lineside_mqtt_connections") == 1


@pytest.fixture(scope="module")
def guarded_http(settings: Settings) -> Iterator[httpx.Client]:
    app = bootstrap(settings.model_copy(update={"metrics_token": SecretStr(METRICS_TOKEN)}))
    with http_client_for(app) as http:
        yield http
    app.close()


def test_a_metrics_token_closes_metrics_to_everyone_else(guarded_http: httpx.Client) -> None:
    assert_problem(guarded_http.get("/metrics"), 401)
    assert_problem(guarded_http.get("/metrics", headers={"Authorization": "Bearer wrong"}), 401)
    assert "lineside_http_requests_total" in str(
        scrape(guarded_http, Authorization=f"Bearer {METRICS_TOKEN}")
    )


def test_metrics_can_be_turned_off(settings: Settings) -> None:
    app = bootstrap(settings.model_copy(update={"metrics_enabled": False}))
    with http_client_for(app) as http:
        assert_problem(http.get("/metrics"), 404)
    app.close()


# -- health and readiness -----------------------------------------------------------------


def test_healthz_touches_nothing_and_readyz_names_what_is_not_ready(
    settings: Settings, tmp_path: Path
) -> None:
    mqtt_port = free_port()  # nothing listens there
    broken = settings.model_copy(
        update={"database_url": f"sqlite:///{tmp_path / 'empty.db'}", "mqtt_port": mqtt_port}
    )
    app = bootstrap(broken)  # an empty database: never migrated
    with http_client_for(app) as http:
        alive = http.get("/healthz")
        ready = http.get("/readyz")
    app.close()

    assert alive.status_code == 200
    body = assert_problem(ready, 503)
    assert body["checks"]["database"] == "ok"
    assert "lineside db upgrade" in body["checks"]["migrations"]
    assert str(mqtt_port) in body["checks"]["mqtt"]
    assert body["checks"]["data_dir"] == "ok"


def test_readyz_is_ready_when_everything_is(application: Application, client: httpx.Client) -> None:
    with embedded_broker(application) as (_host, port):
        app = bootstrap(application.settings.model_copy(update={"mqtt_port": port, "mqtt_host": "127.0.0.1"}))
        with http_client_for(app) as http:
            ready = http.get("/readyz")
        app.close()

    assert ready.status_code == 200, ready.text
    assert ready.json() == {
        "status": "ready",
        "checks": {"database": "ok", "migrations": "ok", "data_dir": "ok", "mqtt": "ok"},
    }


def test_readyz_fails_when_the_server_key_cannot_be_read(settings: Settings, tmp_path: Path) -> None:
    app = bootstrap(settings.model_copy(update={"data_dir": tmp_path / "data", "mqtt_enabled": False}))
    (tmp_path / "data" / "server.key").rename(tmp_path / "moved.key")
    with http_client_for(app) as http:
        body = assert_problem(http.get("/readyz"), 503)
    app.close()
    assert re.search(r"server\.key cannot be read", body["checks"]["data_dir"])
