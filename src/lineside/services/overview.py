"""What the console's overview shows: each product's devices by lifecycle state, claimed or
not, read from the counters kept with every change (never a scan of the devices)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from lineside.domain.errors import InvalidInput, NotFound
from lineside.domain.events import DomainEvent, EventType
from lineside.domain.lifecycle import DeviceState
from lineside.domain.models import Principal, Product, Scope
from lineside.services.context import ServiceContext, require
from lineside.services.ports import ActivityCount, Measure

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
    return Overview(product_figures(ctx, principal), latest_events(ctx, principal))


def latest_events(
    ctx: ServiceContext, principal: Principal, type: EventType | None = None
) -> list[DomainEvent]:
    """The newest events (of one type) of the caller's organization and below, newest first."""
    require(principal, Scope.READ)
    with ctx.unit_of_work(write=False) as uow:
        return uow.events.latest(within=principal.organization.path, limit=RECENT_EVENTS, type=type)


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


# -- activity over time ---------------------------------------------------------------------

# The funnel's steps over time: a device's arrival in each state, and its claim.
FUNNEL_STEPS = ("defined", "under_test", "blessed", "activated", Measure.CLAIMED.value)
BUCKETS = {"day": timedelta(days=1), "week": timedelta(days=7)}
MAX_RANGE_DAYS = 366
ONLINE_COUNTED_TO = 100_000  # past this the overview says "100,000 or more"


@dataclass(frozen=True)
class Bucket:
    start: datetime
    counts: dict[str, int]

    def count(self, measure: str) -> int:
        return self.counts.get(measure, 0)


@dataclass
class SourceYield:
    """How a fixture's (or a factory token's) test runs went: first-pass yield is the share of
    units whose first test run passed; retests are runs after a unit's first, per first run."""

    source: str
    test_runs: int = 0
    tests_passed: int = 0
    first_tests: int = 0
    first_tests_passed: int = 0
    under_test: int = 0  # units enrolled (or re-enrolled) with a factory token
    last_active: datetime | None = None  # the hour it was last counted in

    @property
    def first_pass_yield(self) -> float | None:
        return self.first_tests_passed / self.first_tests if self.first_tests else None

    @property
    def retest_rate(self) -> float | None:
        return (self.test_runs - self.first_tests) / self.first_tests if self.first_tests else None


@dataclass(frozen=True)
class Activity:
    """The overview's figures over a range: the funnel per day or week, activations per hour
    over the last day, test yield per fixture and per factory token, devices online now."""

    since: datetime
    bucket: str
    buckets: list[Bucket]
    activations_per_hour: list[Bucket]
    fixtures: list[SourceYield]
    tokens: list[SourceYield]
    online: int

    @property
    def online_capped(self) -> bool:
        return self.online >= ONLINE_COUNTED_TO

    def peak(self, measure: str) -> int:
        return max((bucket.count(measure) for bucket in self.buckets), default=0)

    def total(self, measure: str) -> int:
        return sum(bucket.count(measure) for bucket in self.buckets)


def activity(
    ctx: ServiceContext, principal: Principal, *, days: int, bucket: str, product_id: str | None = None
) -> Activity:
    """The caller's organization's activity over the last ``days`` days (of one product, or
    all), read from the hourly counters."""
    require(principal, Scope.READ)
    if bucket not in BUCKETS:
        raise InvalidInput(f"The chart's buckets are {' or '.join(BUCKETS)}.")
    if not 1 <= days <= MAX_RANGE_DAYS:
        raise InvalidInput(f"The range is 1 to {MAX_RANGE_DAYS} days.")
    now = ctx.clock()
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    since = today - timedelta(days=days - 1)
    within = principal.organization.path
    with ctx.unit_of_work(write=False) as uow:
        if product_id is not None and uow.products.get(product_id, within=within) is None:
            raise NotFound(f"No product with id '{product_id}' was found.")
        counts = uow.activity.since(within, since, product_id=product_id)
        online = uow.devices.count_online(within=within, at_most=ONLINE_COUNTED_TO)
    whole = [count for count in counts if count.source == ""]
    return Activity(
        since=since,
        bucket=bucket,
        buckets=_buckets(whole, since, today + timedelta(days=1), BUCKETS[bucket]),
        activations_per_hour=_per_hour(whole, now),
        fixtures=_yields(counts, "fixture:"),
        tokens=_yields(counts, "token:"),
        online=online,
    )


def _buckets(counts: list[ActivityCount], start: datetime, end: datetime, width: timedelta) -> list[Bucket]:
    starts = []
    while start < end:
        starts.append(start)
        start += width
    buckets = [Bucket(at, {}) for at in starts]
    for count in counts:
        index = int((count.hour - starts[0]) // width)
        if 0 <= index < len(buckets):
            measures = buckets[index].counts
            measures[count.measure] = measures.get(count.measure, 0) + count.count
    return buckets


def _per_hour(counts: list[ActivityCount], now: datetime) -> list[Bucket]:
    this_hour = now.replace(minute=0, second=0, microsecond=0)
    first = this_hour - timedelta(hours=23)
    activations = [count for count in counts if count.measure == DeviceState.ACTIVATED.value]
    return _buckets(activations, first, this_hour + timedelta(hours=1), timedelta(hours=1))


def _yields(counts: list[ActivityCount], prefix: str) -> list[SourceYield]:
    by_source: dict[str, SourceYield] = {}
    for count in counts:
        if not count.source.startswith(prefix):
            continue
        figures = by_source.setdefault(count.source, SourceYield(count.source.removeprefix(prefix)))
        if count.measure in _YIELD_MEASURES:
            setattr(figures, count.measure, getattr(figures, count.measure) + count.count)
        if figures.last_active is None or count.hour > figures.last_active:
            figures.last_active = count.hour
    return sorted(by_source.values(), key=lambda figures: (figures.first_pass_yield or 0, figures.source))


_YIELD_MEASURES = {
    DeviceState.UNDER_TEST.value,
    Measure.TEST_RUNS.value,
    Measure.TESTS_PASSED.value,
    Measure.FIRST_TESTS.value,
    Measure.FIRST_TESTS_PASSED.value,
}
