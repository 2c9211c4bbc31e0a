"""Which devices run what (the console's firmware page): each released version of a product,
newest first, with how many of its devices report running it, counted only up to a bound."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from lineside.bootstrap import Application
from lineside.domain.errors import NotFound
from lineside.services import firmware_usage
from lineside.services.firmware_usage import VersionInUse
from lineside.services.organizations import operator_principal
from tests.support.api import Tenant, unique
from tests.support.firmware import as_device, release


def reporting(tenant: Tenant, product_id: str, version: str) -> None:
    token = tenant.token(tenant.device(product_id)["id"])
    reported = as_device(tenant.http, token, "POST", "/device/v1/firmware", json={"version": version})
    assert reported.status_code == 200, reported.text


def in_use(application: Application, tenant: Tenant, product_id: str) -> list[VersionInUse]:
    principal = operator_principal(application.services, tenant.organization_id)
    return firmware_usage.devices_by_version(application.services, principal, product_id)


def test_each_released_version_counts_the_devices_reporting_it_up_to_a_bound(
    application: Application, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    product = tenant.product()["id"]
    old, new, unused = (unique(name) for name in ("1.0", "1.1", "1.2"))
    for version in (old, new, unused):
        release(tenant, product, version=version)
    release(tenant, product, kind="factory", version=new)  # the same version twice: listed once
    for version in (old, old, old, new):
        reporting(tenant, product, version)
    reporting(tenant, tenant.product()["id"], new)  # another product's device: not counted

    assert in_use(application, tenant, product) == [
        VersionInUse(new, 1),
        VersionInUse(unused, 0),
        VersionInUse(old, 3),
    ]
    monkeypatch.setattr(firmware_usage, "COUNTED_UP_TO", 2)
    monkeypatch.setattr(firmware_usage, "VERSIONS_COUNTED", 2)
    assert in_use(application, tenant, product) == [
        VersionInUse(new, 1),
        VersionInUse(unused, 0),
        VersionInUse(old, None),  # past the versions counted: named only
    ]
    monkeypatch.setattr(firmware_usage, "VERSIONS_COUNTED", 3)
    assert in_use(application, tenant, product)[-1] == VersionInUse(old, 2, more=True)


def test_another_organizations_product_is_not_found(
    application: Application, tenant: Tenant, make_tenant: Callable[[], Tenant]
) -> None:
    other = make_tenant()
    theirs = other.product()["id"]
    release(other, theirs)

    with pytest.raises(NotFound):
        in_use(application, tenant, theirs)
