"""Lists read the page, not the fleet (issue 13): the work of reading a page of devices,
events or webhook deliveries stays the same when the organization holds ten times more.

Work is counted, not timed: on SQLite the virtual machine steps of the page's statements
(a progress handler), on PostgreSQL the rows their scans read (EXPLAIN ANALYZE). A plan that
reads every visible row, or sorts them, does ten times the work at ten times the rows.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Connection, event, insert, select

from lineside.adapters.db import tables as t
from lineside.adapters.db.paging import encode_cursor
from lineside.bootstrap import Application
from lineside.domain.identifiers import new_id
from lineside.domain.lifecycle import DeviceState
from lineside.domain.webhooks import DeliveryStatus
from lineside.services.ports import DeliveryFilter, DeviceFilter, EventFilter, UnitOfWork
from tests.support.api import Tenant, unique
from tests.support.server import http_client_for
from tests.support.webhooks import isolated_application

API = "/api/v1"
SMALL, LARGE = 1_000, 10_000
PAGE = 100
MAX_GROWTH = 1.5  # a page's work at LARGE over its work at SMALL
SCANS = {"Seq Scan", "Index Scan", "Index Only Scan", "Bitmap Heap Scan"}

Read = Callable[[UnitOfWork], object]


@dataclass
class Fleet:
    """One organization's devices (half of them under test: a second state to filter by),
    with a product, a batch, events, and a webhook endpoint's deliveries."""

    tenant: Tenant
    path: str
    product_id: str
    other_product_id: str
    batch_id: str | None = None
    endpoint_id: str = ""
    devices: int = 0


def grow(application: Application, fleet: Fleet, to: int) -> None:
    """Add devices (in batches of the API), events and deliveries until ``to`` of each."""
    while fleet.devices < to:
        count = min(5_000, to - fleet.devices)
        product = fleet.product_id if fleet.devices % 2 == 0 else fleet.other_product_id
        serials = [unique("SN") for _ in range(count)]
        batch = fleet.tenant.created(
            f"{API}/device-batches", {"product_id": product, "serial_numbers": serials}
        )
        fleet.batch_id = fleet.batch_id or batch["batch_id"]
        fleet.devices += count
    _half_under_test(application, fleet)
    _deliveries(application, fleet, to)


def _half_under_test(application: Application, fleet: Fleet) -> None:
    d = t.devices.c
    with application.engine.begin() as connection:
        connection.execute(
            t.devices.update()
            .where(d.product_id == fleet.other_product_id)
            .values(state=DeviceState.UNDER_TEST.value)
        )
        _analyze(connection)


def _deliveries(application: Application, fleet: Fleet, to: int) -> None:
    w = t.webhook_deliveries.c
    with application.engine.begin() as connection:
        have = len(connection.execute(select(w.id).where(w.endpoint_id == fleet.endpoint_id)).all())
        now = datetime.now(UTC)
        rows = [
            {
                "id": new_id(),
                "endpoint_id": fleet.endpoint_id,
                "organization_id": fleet.tenant.organization_id,
                "event_id": str(uuid.uuid4()),
                "event_type": "device.defined",
                "status": DeliveryStatus.SUCCEEDED.value if n % 2 else DeliveryStatus.FAILED.value,
                "attempt_count": 1,
                "created_at": now,
            }
            for n in range(have, to)
        ]
        if rows:
            connection.execute(insert(t.webhook_deliveries), rows)
        _analyze(connection)


def _analyze(connection: Connection) -> None:
    # Statistics, as autovacuum (PostgreSQL) or PRAGMA optimize (SQLite) keep them in service.
    connection.exec_driver_sql("ANALYZE")


@pytest.fixture(scope="module")
def application(
    database_url: str, data_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Application]:
    """A database of its own: the plans are this fleet's, not shaped by what the suite's
    other tests left in the tables (on PostgreSQL their statistics can change a plan)."""
    with isolated_application(database_url, data_dir, tmp_path_factory.mktemp("page-plans")) as app:
        yield app


@pytest.fixture(scope="module")
def client(application: Application) -> Iterator[httpx.Client]:
    with http_client_for(application) as http:
        yield http


@pytest.fixture
def fleet(application: Application, tenant: Tenant) -> Fleet:
    product, other = tenant.product()["id"], tenant.product()["id"]
    endpoint = {"id": new_id()}  # stored as the API would; its deliveries are added below
    with application.engine.begin() as connection:
        connection.execute(
            insert(t.webhook_endpoints).values(
                id=endpoint["id"],
                organization_id=tenant.organization_id,
                url="https://hooks.example.com/lineside",
                event_types=["device.activated"],
                sealed_secret="not used",
                created_at=datetime.now(UTC),
            )
        )
    with application.services.unit_of_work(write=False) as uow:
        organization = uow.organizations.get(tenant.organization_id, within="/")
    assert organization is not None
    return Fleet(tenant, organization.path, product, other, endpoint_id=endpoint["id"])


@contextmanager
def counting(application: Application, uow: UnitOfWork) -> Iterator[list[int]]:
    """The work of what runs on ``uow``'s connection inside the block."""
    connection: Connection = uow.devices.connection  # type: ignore[attr-defined]
    work = [0]
    if application.engine.dialect.name == "sqlite":
        driver = connection.connection.driver_connection
        assert driver is not None

        def step() -> int:
            work[0] += 1
            return 0  # go on

        driver.set_progress_handler(step, 10)
        try:
            yield work
        finally:
            driver.set_progress_handler(None, 0)
        return
    statements: list[tuple[str, Any]] = []

    def captured(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        statements.append((statement, parameters))

    event.listen(connection, "before_cursor_execute", captured)
    try:
        yield work
    finally:
        event.remove(connection, "before_cursor_execute", captured)
    for statement, parameters in statements:
        [[plan]] = connection.exec_driver_sql(f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}", parameters).all()
        work[0] += _rows_read(plan[0]["Plan"] if isinstance(plan, list) else json.loads(plan)[0]["Plan"])


def _rows_read(node: dict[str, Any]) -> int:
    read = 0
    if node["Node Type"] in SCANS:
        loops = node.get("Actual Loops", 1)
        read += int(node.get("Actual Rows", 0) * loops + node.get("Rows Removed by Filter", 0))
        read += int(node.get("Rows Removed by Index Recheck", 0))
    return read + sum(_rows_read(child) for child in node.get("Plans", []))


def work_of(application: Application, read: Read) -> int:
    with application.services.unit_of_work(write=False) as uow, counting(application, uow) as work:
        read(uow)
    return work[0]


def deep_cursor(application: Application, fleet: Fleet) -> str:
    """The cursor of the device 90% of the way down the organization's list."""
    d = t.devices.c
    with application.engine.connect() as connection:
        ids = connection.execute(
            select(d.id).where(d.organization_id == fleet.tenant.organization_id).order_by(d.id)
        ).scalars()
        listed = list(ids)
    return encode_cursor(listed[len(listed) * 9 // 10])


def device_pages(fleet: Fleet, application: Application) -> dict[str, Read]:
    def devices(filters: DeviceFilter, cursor: Callable[[], str | None] = lambda: None) -> Read:
        return lambda uow: uow.devices.list(within=fleet.path, filters=filters, cursor=cursor(), limit=PAGE)

    return {
        "devices: first page": devices(DeviceFilter()),
        "devices: a page 90% down": devices(DeviceFilter(), lambda: deep_cursor(application, fleet)),
        "devices of a product": devices(DeviceFilter(product_id=fleet.product_id)),
        "devices in a state": devices(DeviceFilter(state=DeviceState.UNDER_TEST)),
        "devices of a product in a state": devices(
            DeviceFilter(product_id=fleet.other_product_id, state=DeviceState.UNDER_TEST)
        ),
        "devices of a batch": devices(DeviceFilter(batch_id=fleet.batch_id)),
        "a serial number": devices(DeviceFilter(serial_number="no-such-serial")),
        "a MAC or hardware id": devices(DeviceFilter(hardware_address="02:00:00:00:00:01")),
        "devices of a group": devices(DeviceFilter(group_id=fleet.product_id)),  # no such group
        "devices online": devices(DeviceFilter(online=True)),
        "devices, newest first": devices(DeviceFilter(newest_first=True)),
        "devices, newest first, a page 10% from the end": devices(
            DeviceFilter(newest_first=True), lambda: deep_cursor(application, fleet)
        ),
        "devices of a product on a firmware version": devices(
            DeviceFilter(product_id=fleet.product_id, firmware_version="9.9.9")
        ),
        "devices online, counted": lambda uow: uow.devices.count_online(within=fleet.path, at_most=1000),
        "activity of a month": lambda uow: uow.activity.since(
            fleet.path, datetime.now(UTC) - timedelta(days=30)
        ),
        "events": lambda uow: uow.events.list(
            within=fleet.path, filters=EventFilter(), cursor=None, limit=PAGE
        ),
        "events of a type": lambda uow: uow.events.list(
            within=fleet.path, filters=EventFilter(type="device.defined"), cursor=None, limit=PAGE
        ),
        "deliveries": lambda uow: uow.webhooks.list_deliveries(
            fleet.endpoint_id, filters=DeliveryFilter(), cursor=None, limit=PAGE
        ),
        "failed deliveries": lambda uow: uow.webhooks.list_deliveries(
            fleet.endpoint_id, filters=DeliveryFilter(status=DeliveryStatus.FAILED), cursor=None, limit=PAGE
        ),
    }


def test_a_page_costs_the_same_at_ten_times_the_rows(application: Application, fleet: Fleet) -> None:
    pages = device_pages(fleet, application)
    grow(application, fleet, SMALL)
    small = {name: work_of(application, read) for name, read in pages.items()}
    grow(application, fleet, LARGE)
    large = {name: work_of(application, read) for name, read in pages.items()}

    grew = {name: round(large[name] / max(small[name], 1), 2) for name in pages}
    assert all(small[name] > 0 for name in pages), small  # the meter sees the work
    assert {name: ratio for name, ratio in grew.items() if ratio > MAX_GROWTH} == {}, (small, large)


def test_the_meter_sees_a_query_that_reads_every_row(application: Application, fleet: Fleet) -> None:
    """The same meter on a plan that must read the whole organization (a count) grows with it."""
    d = t.devices.c
    count = select(d.id).where(d.organization_id == fleet.tenant.organization_id, d.mac.is_(None))

    def read_all(uow: UnitOfWork) -> object:
        return uow.devices.connection.execute(count).all()  # type: ignore[attr-defined]

    grow(application, fleet, SMALL)
    small = work_of(application, read_all)
    grow(application, fleet, LARGE)
    assert work_of(application, read_all) > 5 * small
