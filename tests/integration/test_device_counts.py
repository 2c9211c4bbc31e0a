"""Device counters (issue 13): kept in the transactions that change devices, they agree with
the devices themselves after every path that adds, deletes, moves (claim, unclaim, disclaim,
transfer) or changes the state of a device, on both databases; `lineside db recount`
rebuilds them; the quota reads them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from click.testing import CliRunner
from sqlalchemy import func, select, update

from lineside.adapters.db import tables as t
from lineside.bootstrap import Application
from lineside.entrypoints.cli.main import cli
from lineside.settings import Settings
from tests.integration.test_mqtt_presence import connect_and_flush
from tests.support.api import Tenant, assert_problem, unique
from tests.support.factory import (
    activate,
    bless,
    enroll,
    factory_token,
    hardware_id,
    production_token,
    record_run,
)
from tests.support.people import label_rows, new_person, static_batch
from tests.support.provisioning import ask, provisioned_product, succeeded

API = "/api/v1"
Counts = Counter[tuple[str, str, bool]]  # (product, state, claimed) -> devices


def counted(application: Application, organization_id: str) -> Counts:
    """What the counters say of the organization's devices."""
    c = t.device_counts.c
    with application.engine.connect() as connection:
        rows = connection.execute(
            select(c.product_id, c.state, c.claimed, c.devices).where(c.organization_id == organization_id)
        )
        return Counter({(p, s, bool(cl)): n for p, s, cl, n in rows if n})


def actual(application: Application, organization_id: str) -> Counts:
    """What the devices are."""
    d = t.devices.c
    claimed = d.owner_organization_id.is_not(None)
    with application.engine.connect() as connection:
        rows = connection.execute(
            select(d.product_id, d.state, claimed, func.count())
            .where(d.organization_id == organization_id)
            .group_by(d.product_id, d.state, claimed)
        )
        return Counter({(p, s, bool(cl)): n for p, s, cl, n in rows})


def agree(application: Application, tenant: Tenant) -> Counts:
    found = actual(application, tenant.organization_id)
    assert counted(application, tenant.organization_id) == found
    return found


def states(counts: Counts) -> Counter[str]:
    by_state: Counter[str] = Counter()
    for (_product, state, _claimed), devices in counts.items():
        by_state[state] += devices
    return by_state


# -- every path -------------------------------------------------------------------------------


def test_defining_one_and_in_batches_counts_every_device(application: Application, tenant: Tenant) -> None:
    product = tenant.product()["id"]
    tenant.device(product)
    serials = [unique("SN") for _ in range(5)]
    tenant.created(f"{API}/device-batches", {"product_id": product, "serial_numbers": serials})
    csv_body = "serial_number\n" + "\n".join(unique("SN") for _ in range(3)) + "\n"
    created = tenant.post(
        f"{API}/device-batches",
        params={"product_id": product},
        content=csv_body.encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert created.status_code == 201, created.text
    static_batch(tenant, 4)

    assert states(agree(application, tenant)) == {"defined": 13}


def test_a_refused_batch_counts_nothing(application: Application, tenant: Tenant) -> None:
    product = tenant.product()["id"]
    duplicate = unique("SN")
    refused = tenant.post(
        f"{API}/device-batches", json={"product_id": product, "serial_numbers": [duplicate] * 2}
    )
    assert_problem(refused, 422)
    assert agree(application, tenant) == Counter()


def test_the_factory_line_moves_counts_from_state_to_state(application: Application, tenant: Tenant) -> None:
    product = tenant.product()["id"]
    token = factory_token(tenant, product)
    units = [enroll(tenant.http, token, hardware_id()).json()["device"]["id"] for _ in range(4)]
    assert states(agree(application, tenant)) == {"under_test": 4}

    for unit, passed in zip(units, (True, True, False, False), strict=True):
        record_run(tenant, unit, passed)
        assert bless(tenant, unit).status_code == 200
    assert states(agree(application, tenant)) == {"blessed": 2, "failed": 2}

    assert enroll(tenant.http, token, _hardware_of(tenant, units[2])).status_code == 201  # a retest
    assert activate(tenant.http, production_token(tenant), units[0]).status_code == 200
    assert states(agree(application, tenant)) == {"activated": 1, "blessed": 1, "failed": 1, "under_test": 1}


def _hardware_of(tenant: Tenant, device_id: str) -> str:
    hardware: str = tenant.get(f"{API}/devices/{device_id}").json()["hardware_id"]
    return hardware


def test_activation_on_first_connection_and_revocation_are_counted(
    application: Application, tenant: Tenant
) -> None:
    product = tenant.product()["id"]
    first, second = tenant.device(product)["id"], tenant.device(product)["id"]
    assert connect_and_flush(application, first, second).activated == 2
    assert states(agree(application, tenant)) == {"activated": 2}
    assert tenant.post(f"{API}/devices/{first}/revoke").status_code == 200
    assert states(agree(application, tenant)) == {"activated": 1, "revoked": 1}


def test_devices_made_by_mqtt_provisioning_are_counted(application: Application, tenant: Tenant) -> None:
    settings = provisioned_product(tenant)
    for _ in range(2):
        succeeded(ask(application, settings, deviceName=unique("SN")))
    assert states(agree(application, tenant)) == {"defined": 2}


def test_claims_move_counts_between_unclaimed_and_claimed(application: Application, tenant: Tenant) -> None:
    labels = label_rows(tenant, static_batch(tenant, 4))
    owner, receiver = new_person(tenant.http), new_person(tenant.http)
    for label in labels:
        assert owner.claim(label["claim_code"]).status_code == 201

    def claimed(counts: Counts) -> int:
        return sum(n for (_p, _s, is_claimed), n in counts.items() if is_claimed)

    assert claimed(agree(application, tenant)) == 4

    ids = [label["device_id"] for label in labels]
    assert owner.delete(f"{API}/devices/{ids[0]}/claim").status_code == 200
    assert tenant.post(f"{API}/devices/{ids[1]}/disclaim").status_code == 200
    code = owner.post(f"{API}/devices/{ids[2]}/transfers").json()["code"]
    assert receiver.post(f"{API}/transfers/accept", json={"code": code}).status_code == 200
    assert claimed(agree(application, tenant)) == 2  # a transfer keeps the device claimed

    assert tenant.delete(f"{API}/devices/{ids[3]}").status_code == 204  # claimed, then deleted
    assert tenant.delete(f"{API}/devices/{ids[0]}").status_code == 204  # unclaimed, deleted
    counts = agree(application, tenant)
    assert (claimed(counts), sum(counts.values())) == (1, 2)


# -- reading them -----------------------------------------------------------------------------


def test_the_quota_is_read_from_the_counters(
    application: Application, make_tenant: Callable[[], Tenant], settings: Settings
) -> None:
    tenant = make_tenant()
    product = tenant.product()["id"]
    runner = CliRunner()
    env = {"LINESIDE_DATABASE_URL": settings.database_url, "LINESIDE_DATA_DIR": str(settings.data_dir)}
    assert runner.invoke(cli, ["org", "quota", tenant.organization_id, "3"], env=env).exit_code == 0
    for _ in range(3):
        tenant.device(product)
    assert_problem(
        tenant.post(f"{API}/devices", json={"product_id": product, "serial_number": unique("SN")}), 403
    )
    assert (
        tenant.delete(f"{API}/devices/{tenant.get(f'{API}/devices').json()['items'][0]['id']}").status_code
        == 204
    )
    tenant.device(product)  # a deletion frees a place


def test_recount_repairs_counters_that_drifted(
    application: Application, tenant: Tenant, settings: Settings
) -> None:
    product = tenant.product()["id"]
    for _ in range(3):
        tenant.device(product)
    c = t.device_counts.c
    with application.engine.begin() as connection:
        connection.execute(
            update(t.device_counts).where(c.organization_id == tenant.organization_id).values(devices=99)
        )
    assert states(counted(application, tenant.organization_id)) == {"defined": 99}

    env = {"LINESIDE_DATABASE_URL": settings.database_url, "LINESIDE_DATA_DIR": str(settings.data_dir)}
    result = CliRunner().invoke(cli, ["db", "recount"], env=env)

    assert result.exit_code == 0, result.output
    assert "1 counter was wrong" in result.output or "counters were wrong" in result.output
    assert states(agree(application, tenant)) == {"defined": 3}


def test_the_operators_figures_come_from_the_counters(application: Application, tenant: Tenant) -> None:
    tenant.device(tenant.product()["id"])
    with application.services.unit_of_work(write=False) as uow:
        by_state = uow.device_counts.by_state()
    d = t.devices.c
    with application.engine.connect() as connection:
        rows: dict[str, int] = dict(connection.execute(select(d.state, func.count()).group_by(d.state)).all())
    assert by_state == rows  # every device of the database, however it was made
