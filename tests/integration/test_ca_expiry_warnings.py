"""A maker's CA that expires within 30 days is announced once (``certificate_authority.expiring``,
an event and so a webhook): by the service the worker calls, by the worker itself at start,
and by only one of several workers checking at once (PostgreSQL, where they can). Both
databases otherwise."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from lineside.bootstrap import Application
from lineside.entrypoints.worker import BackgroundWorker
from lineside.services.authorities import warn_expiring
from lineside.services.context import ServiceContext
from tests.support.api import Tenant, new_tenant
from tests.support.pki import API, Maker, certificate, new_key, new_maker, pem
from tests.support.server import http_client_for
from tests.support.webhooks import isolated_application, wait_until

EXPIRING = "certificate_authority.expiring"


def maker_whose_line_ca_lasts(days: int) -> Maker:
    maker = new_maker()
    key = new_key()
    line_ca = certificate(
        "Maker Line CA", key, (maker.root.subject, maker.root_key), ca=True, path_length=0, days=days
    )
    return replace(maker, intermediate=line_ca, intermediate_key=key)


def proven(tenant: Tenant, maker: Maker, *, verify: bool = True) -> str:
    """The maker's line CA registered for a new product of the tenant (and proven)."""
    product_id = tenant.product()["id"]
    made = tenant.created(
        f"{API}/products/{product_id}/certificate-authorities", {"certificate": pem(maker.intermediate)}
    )
    if verify:
        answer = tenant.post(
            f"{API}/certificate-authorities/{made['id']}/verify",
            json={"verification_certificate": maker.proof(made["challenge"])},
        )
        assert answer.status_code == 200, answer.text
    authority_id: str = made["id"]
    return authority_id


def warnings_of(tenant: Tenant) -> list[dict[str, Any]]:
    return list(tenant.get(f"{API}/audit-events", params={"type": EXPIRING}).json()["items"])


def later(ctx: ServiceContext, days: int) -> ServiceContext:
    now = ctx.clock()
    clock: Callable[[], datetime] = lambda: now + timedelta(days=days)  # noqa: E731
    return replace(ctx, clock=clock)


def test_a_ca_expiring_within_30_days_is_announced_once(tenant: Tenant, application: Application) -> None:
    soon = proven(tenant, maker_whose_line_ca_lasts(days=20))
    proven(tenant, maker_whose_line_ca_lasts(days=60))  # not yet
    proven(tenant, maker_whose_line_ca_lasts(days=5), verify=False)  # trusts nothing: no warning

    first = warn_expiring(application.services)
    again = warn_expiring(application.services)

    assert first >= 1  # this tenant's, and any another test left expiring
    assert again == 0
    (warning,) = warnings_of(tenant)
    assert warning["subject_id"] == soon
    assert (
        warning["data"]["not_after"][:10]
        == tenant.get(f"{API}/certificate-authorities/{soon}").json()["not_after"][:10]
    )


def test_a_ca_is_announced_when_its_last_30_days_begin(tenant: Tenant, application: Application) -> None:
    authority_id = proven(tenant, maker_whose_line_ca_lasts(days=365))

    warn_expiring(application.services)
    assert warnings_of(tenant) == []
    warn_expiring(later(application.services, days=340))
    warn_expiring(later(application.services, days=341))

    assert [w["subject_id"] for w in warnings_of(tenant)] == [authority_id]


@pytest.fixture
def on_postgres(
    postgres_database: str, data_dir: Path, tmp_path: Path
) -> Iterator[tuple[Application, Tenant]]:
    """PostgreSQL alone: on SQLite one write runs at a time, so a second worker simply waits
    for the first and there is no concurrent announcing to test."""
    with isolated_application(postgres_database, data_dir, tmp_path) as app, http_client_for(app) as http:
        yield app, new_tenant(app, http)


def test_while_one_worker_announces_a_ca_another_skips_it(on_postgres: tuple[Application, Tenant]) -> None:
    application, tenant = on_postgres
    authority_id = proven(tenant, maker_whose_line_ca_lasts(days=10))
    ctx = application.services

    with ctx.unit_of_work() as first:
        held = [a.id for a in first.authorities.expiring_unwarned(ctx.clock() + timedelta(days=30))]
        warn_expiring(ctx)  # the second worker, meanwhile: the held CAs are not its to announce
        assert warnings_of(tenant) == []
        # left without a commit: rolled back, as if the first worker had died
    assert authority_id in held
    warn_expiring(ctx)
    assert [w["subject_id"] for w in warnings_of(tenant)] == [authority_id]


def test_the_worker_announces_expiring_cas_when_it_starts(
    hooks_app: Application, hooks_client: httpx.Client
) -> None:
    tenant = new_tenant(hooks_app, hooks_client)
    authority_id = proven(tenant, maker_whose_line_ca_lasts(days=7))

    worker = BackgroundWorker(hooks_app.services, poll_seconds=0.05)
    worker.start()
    try:
        wait_until(lambda: warnings_of(tenant), "the worker's CA expiry warning")
    finally:
        worker.stop(timeout=10)

    assert [w["subject_id"] for w in warnings_of(tenant)] == [authority_id]
