"""Which devices run what: how many of a product's devices report each released version.

Devices report the version they run (``services.firmware.report_installed_version``); the
devices table keeps an index on (product, firmware version, id). Counting a version reads
at most ``cap`` + 1 index entries, so a page that shows these figures costs the same for a
hundred devices as for a million: past the cap it says "at least".
"""

from __future__ import annotations

from dataclasses import dataclass

from lineside.domain.models import Principal, Scope
from lineside.services.context import ServiceContext, require
from lineside.services.lookups import load_product
from lineside.services.ports import DeviceFilter, UnitOfWork

COUNTED_UP_TO = 100  # devices per version; past it, "at least this many"
VERSIONS_COUNTED = 20  # the newest released versions are counted, older ones only named


@dataclass(frozen=True)
class VersionInUse:
    """A released version and how many of the product's devices report running it: exactly
    ``devices``, or at least that many when ``more``; None when it was not counted."""

    version: str
    devices: int | None
    more: bool = False


def devices_by_version(ctx: ServiceContext, principal: Principal, product_id: str) -> list[VersionInUse]:
    """The product's released versions, newest first, each with a bounded count of its devices."""
    require(principal, Scope.READ)
    with ctx.unit_of_work(write=False) as uow:
        product = load_product(uow, principal, product_id)
        releases = uow.firmware.list_releases(product.id, None)
        versions = list(dict.fromkeys(release.version for release in releases))
        return [
            _counted(uow, principal, product.id, version)
            if index < VERSIONS_COUNTED
            else VersionInUse(version, None)
            for index, version in enumerate(versions)
        ]


def _counted(uow: UnitOfWork, principal: Principal, product_id: str, version: str) -> VersionInUse:
    page = uow.devices.list(
        within=principal.organization.path,
        filters=DeviceFilter(product_id=product_id, firmware_version=version),
        cursor=None,
        limit=COUNTED_UP_TO,
    )
    return VersionInUse(version, len(page.items), more=page.next_cursor is not None)
