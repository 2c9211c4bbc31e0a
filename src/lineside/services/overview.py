"""What the console's overview shows: each product's devices by lifecycle state, claimed or
not, read from the counters kept with every change (never a scan of the devices)."""

from __future__ import annotations

from dataclasses import dataclass, field

from lineside.domain.events import DomainEvent
from lineside.domain.lifecycle import DeviceState
from lineside.domain.models import Principal, Product, Scope
from lineside.services.context import ServiceContext, require

RECENT_EVENTS = 20
MAX_PRODUCTS_SHOWN = 200


@dataclass
class ProductFigures:
    """One product's devices now: how many in each state, and how many an owner claimed."""

    product_id: str
    product_name: str
    by_state: dict[DeviceState, int] = field(default_factory=dict)
    claimed: int = 0

    @property
    def total(self) -> int:
        return sum(self.by_state.values())

    def count(self, state: DeviceState) -> int:
        return self.by_state.get(state, 0)

    @property
    def activated_share(self) -> float | None:
        """Activated devices per device not revoked (None when there is none)."""
        alive = self.total - self.count(DeviceState.REVOKED)
        return self.count(DeviceState.ACTIVATED) / alive if alive else None

    @property
    def claimed_share(self) -> float | None:
        """Claimed devices per activated one (None before any activation)."""
        activated = self.count(DeviceState.ACTIVATED)
        return min(self.claimed / activated, 1.0) if activated else None


@dataclass(frozen=True)
class Overview:
    products: list[ProductFigures]
    recent_events: list[DomainEvent]

    @property
    def totals(self) -> ProductFigures:
        summed = ProductFigures("", "All products")
        for figures in self.products:
            for state, devices in figures.by_state.items():
                summed.by_state[state] = summed.by_state.get(state, 0) + devices
            summed.claimed += figures.claimed
        return summed


def overview(ctx: ServiceContext, principal: Principal) -> Overview:
    """Every product of the caller's organization (and below) with its figures, busiest
    first, and the latest events."""
    figures = product_figures(ctx, principal)
    with ctx.unit_of_work(write=False) as uow:
        recent = uow.events.latest(within=principal.organization.path, limit=RECENT_EVENTS)
    return Overview(figures, recent)


def product_figures(ctx: ServiceContext, principal: Principal) -> list[ProductFigures]:
    """Every product of the caller's organization (and below) with its devices by state and
    claimed, busiest first."""
    require(principal, Scope.READ)
    within = principal.organization.path
    with ctx.unit_of_work(write=False) as uow:
        counts = uow.device_counts.within(within)
        products = uow.products.list(within=within, cursor=None, limit=MAX_PRODUCTS_SHOWN).items
    figures = {product.id: _empty(product) for product in products}
    for count in counts:
        product = figures.get(count.product_id)
        if product is None:
            continue  # a product past the first MAX_PRODUCTS_SHOWN
        state = DeviceState(count.state)
        product.by_state[state] = product.by_state.get(state, 0) + count.devices
        product.claimed += count.devices if count.claimed else 0
    return sorted(figures.values(), key=lambda f: (-f.total, f.product_name))


def _empty(product: Product) -> ProductFigures:
    return ProductFigures(product.id, product.name)
