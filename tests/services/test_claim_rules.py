"""Claiming, unclaiming, disclaiming and deleting, on fakes: who may, and what each leaves."""

from __future__ import annotations

from datetime import timedelta

import pytest

from lineside.domain.errors import AlreadyExists, Conflict, Gone, NotFound, PermissionDenied, TooManyAttempts
from lineside.domain.events import EventType
from lineside.domain.models import Principal, Scope
from lineside.services import claims, devices
from lineside.services.claims import ClaimStatus
from lineside.services.ports import DeviceFilter
from tests.services.conftest import Maker, World, owner_of
from tests.services.helpers import claim_code_of, static_batch

ADDRESS = "203.0.113.9"


@pytest.fixture
def unit(maker: Maker) -> str:
    batch = static_batch(maker, count=1)
    page = devices.list_devices(
        maker.services, maker.admin, filters=DeviceFilter(batch_id=batch.id), cursor=None, limit=10
    )
    return page.items[0].id


def claim(world: World, who: Principal, code: str, address: str = ADDRESS) -> str:
    return claims.claim_device(world.services, who, code, client_address=address).id


def test_the_owner_claims_a_unit_into_their_organization(
    world: World, maker: Maker, owner: Principal, unit: str
) -> None:
    assert claim(world, owner, claim_code_of(maker, unit)) == unit
    device = devices.get_device(world.services, owner, unit)  # visible to the owner now
    assert device.owner_organization_id == owner.organization.id
    assert devices.get_device(world.services, maker.admin, unit).is_claimed  # and still to its maker
    assert world.database.tables.events[-1].type == EventType.DEVICE_CLAIMED


def test_claiming_twice_is_harmless_and_a_second_owner_is_refused(
    world: World, maker: Maker, owner: Principal, unit: str
) -> None:
    code = claim_code_of(maker, unit)
    claim(world, owner, code)
    claimed_events = len(world.database.tables.events)
    assert claim(world, owner, code) == unit  # the same owner again: nothing changes
    assert len(world.database.tables.events) == claimed_events
    with pytest.raises(AlreadyExists, match="already been claimed"):
        claim(world, owner_of(world, "second@example.com"), code)


def test_unclaimed_the_same_code_claims_it_again(
    world: World, maker: Maker, owner: Principal, unit: str
) -> None:
    code = claim_code_of(maker, unit)
    claim(world, owner, code)
    claims.unclaim_device(world.services, owner, unit)
    assert not devices.get_device(world.services, maker.admin, unit).is_claimed
    other = owner_of(world, "next@example.com")
    assert claim(world, other, code) == unit


def test_only_the_maker_disclaims_and_only_a_claimed_unit(
    world: World, maker: Maker, owner: Principal, unit: str
) -> None:
    with pytest.raises(Conflict, match="not claimed"):
        claims.disclaim_device(world.services, maker.admin, unit)
    claim(world, owner, claim_code_of(maker, unit))
    with pytest.raises(NotFound):
        claims.disclaim_device(world.services, owner, unit)  # an owner is not the maker
    claims.disclaim_device(world.services, maker.admin, unit)
    with pytest.raises(NotFound):
        devices.get_device(world.services, owner, unit)


def test_a_deleted_units_code_says_so(world: World, maker: Maker, owner: Principal, unit: str) -> None:
    code = claim_code_of(maker, unit)
    claims.delete_device(world.services, maker.admin, unit)
    view = claims.describe_claim(world.services, code, client_address=ADDRESS)
    assert view.status is ClaimStatus.DELETED
    with pytest.raises(Gone, match="deleted by its manufacturer"):
        claim(world, owner, code)


def test_a_rival_organization_can_neither_unclaim_disclaim_nor_delete(
    world: World, maker: Maker, rival: Maker, owner: Principal, unit: str
) -> None:
    claim(world, owner, claim_code_of(maker, unit))
    for step in (claims.unclaim_device, claims.disclaim_device, claims.delete_device):
        with pytest.raises(NotFound):
            step(world.services, rival.admin, unit)
    assert (
        devices.get_device(world.services, maker.admin, unit).owner_organization_id == owner.organization.id
    )


def test_claiming_needs_the_admin_scope(world: World, maker: Maker, unit: str) -> None:
    with pytest.raises(PermissionDenied, match="'admin' scope"):
        claim(world, maker.key(Scope.FACTORY), claim_code_of(maker, unit))


def test_wrong_codes_are_limited_per_account_and_right_ones_cost_nothing(
    world: World, maker: Maker, owner: Principal, unit: str
) -> None:
    config = world.services.config
    for attempt in range(config.claim_attempts_per_window):
        with pytest.raises(NotFound):
            claim(world, owner, f"lsc_wrongcode{attempt:04d}", address=f"192.0.2.{attempt}")
    with pytest.raises(TooManyAttempts) as refused:
        claim(world, owner, claim_code_of(maker, unit), address="192.0.2.200")
    assert refused.value.retry_after_seconds > 0
    world.clock.advance(config.claim_window + timedelta(seconds=1))
    for _ in range(config.claim_attempts_per_window + 1):  # right codes are refunded
        assert claim(world, owner, claim_code_of(maker, unit)) == unit


def test_a_spent_address_still_lets_a_new_account_make_its_first_attempts(
    world: World, maker: Maker, unit: str
) -> None:
    config = world.services.config
    per_account = config.claim_attempts_per_window - 1  # no account spends its own slots
    accounts = -(-config.claim_address_attempts_per_window // per_account)
    strangers = [owner_of(world, f"stranger{n}@example.com") for n in range(accounts)]
    guesses = [s for s in strangers for _ in range(per_account)][: config.claim_address_attempts_per_window]
    for attempt, stranger in enumerate(guesses):
        with pytest.raises(NotFound):
            claim(world, stranger, f"lsc_guess{attempt:04d}")
    with pytest.raises(TooManyAttempts):  # the address's slots are spent, not the account's
        claim(world, guesses[-1], "lsc_guessmore")
    owner = owner_of(world, "rightful@example.com")
    assert claim(world, owner, claim_code_of(maker, unit)) == unit  # the grace lets the owner in
