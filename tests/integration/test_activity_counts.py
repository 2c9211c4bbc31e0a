"""Activity counters (issue 15's charts): every arrival in a lifecycle state, each retest and
claim, and each test run per fixture and per factory token is counted per product and hour
in the transaction that makes it, on both databases; the overview reads them as a funnel
per day or week, activations per hour, and yield per fixture and token."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from lineside.bootstrap import Application
from lineside.domain.errors import InvalidInput, NotFound
from lineside.services import overview
from lineside.services.organizations import operator_principal
from tests.support.api import Tenant
from tests.support.factory import bless, enroll, enrolled, factory_token, hardware_id, record_run

API = "/api/v1"


def test_the_line_is_counted_per_state_retest_fixture_and_token(
    application: Application, tenant: Tenant
) -> None:
    product = tenant.product()
    for _ in range(3):
        tenant.device(product["id"])
    token = factory_token(tenant, product["id"])
    good, bad = hardware_id(), hardware_id()
    first = enrolled(tenant.http, token, good)["device"]
    second = enrolled(tenant.http, token, bad)["device"]
    record_run(tenant, first["id"], True, fixture="bench A")
    record_run(tenant, second["id"], False, fixture="bench B")
    assert bless(tenant, first["id"]).status_code == 200
    assert bless(tenant, second["id"]).status_code == 200  # fails it
    assert enroll(tenant.http, token, bad).status_code in (200, 201)  # the retest
    record_run(tenant, second["id"], True, fixture="bench A")

    seen = overview.activity(
        application.services,
        operator_principal(application.services, tenant.organization_id),
        days=7,
        bucket="day",
        product_id=product["id"],
    )
    today = seen.buckets[-1]
    assert today.start.date() == datetime.now(UTC).date()
    assert {
        step: today.count(step) for step in ("defined", "under_test", "blessed", "failed", "retested")
    } == {
        "defined": 3,
        "under_test": 3,
        "blessed": 1,
        "failed": 1,
        "retested": 1,
    }
    assert sum(bucket.count("defined") for bucket in seen.buckets[:-1]) == 0
    fixtures = {figures.source: figures for figures in seen.fixtures}
    assert (fixtures["bench A"].first_tests, fixtures["bench A"].test_runs) == (1, 2)
    assert fixtures["bench A"].first_pass_yield == 1.0
    assert fixtures["bench B"].first_pass_yield == 0.0
    (by_token,) = seen.tokens
    assert (by_token.first_tests, by_token.first_tests_passed, by_token.test_runs) == (2, 1, 3)
    assert by_token.retest_rate == 0.5


def test_weeks_sum_the_days_and_bad_ranges_are_refused(application: Application, tenant: Tenant) -> None:
    product = tenant.product()
    tenant.device(product["id"])
    ctx = application.services
    principal = operator_principal(ctx, tenant.organization_id)
    weekly = overview.activity(ctx, principal, days=28, bucket="week")
    assert len(weekly.buckets) == 4
    assert sum(bucket.count("defined") for bucket in weekly.buckets) == 1
    with pytest.raises(InvalidInput):
        overview.activity(ctx, principal, days=0, bucket="day")
    with pytest.raises(InvalidInput):
        overview.activity(ctx, principal, days=7, bucket="month")


def test_another_organizations_product_is_not_found(
    application: Application, tenant: Tenant, make_tenant: Callable[[], Tenant]
) -> None:
    other_tenant = make_tenant()
    theirs = other_tenant.product()
    other_tenant.device(theirs["id"])
    ctx = application.services
    mine = operator_principal(ctx, tenant.organization_id)
    with pytest.raises(NotFound):
        overview.activity(ctx, mine, days=7, bucket="day", product_id=theirs["id"])
    assert (
        sum(bucket.count("defined") for bucket in overview.activity(ctx, mine, days=7, bucket="day").buckets)
        == 0
    )
