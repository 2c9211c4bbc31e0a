"""People (sign-in limits, passwords, invitations), organizations and keys, and device
transfers between owners, on fakes."""

from __future__ import annotations

from datetime import timedelta

import pytest

from lineside.domain.errors import (
    AlreadyExists,
    Conflict,
    Gone,
    InvalidInput,
    NotFound,
    PermissionDenied,
    TooManyAttempts,
    Unauthenticated,
)
from lineside.domain.models import Principal, Role, Scope
from lineside.services import claims, devices, organizations, people, static_tokens, transfers
from tests.services.conftest import Maker, World, owner_of
from tests.services.helpers import claim_code_of, static_batch

PASSWORD = "a long enough password"
ADDRESS = "198.51.100.7"


def test_wrong_passwords_are_limited_and_a_right_one_costs_nothing(world: World) -> None:
    people.sign_up(world.services, "pat@example.com", PASSWORD, client_address=ADDRESS)
    config = world.services.config
    for _ in range(config.sign_in_attempts_per_window):
        with pytest.raises(Unauthenticated, match="email or the password is wrong"):
            people.sign_in(world.services, "pat@example.com", "wrong password", client_address=ADDRESS)
    with pytest.raises(TooManyAttempts):
        people.sign_in(world.services, "pat@example.com", PASSWORD, client_address=ADDRESS)
    world.clock.advance(config.sign_in_window + timedelta(seconds=1))
    for _ in range(config.sign_in_attempts_per_window + 1):
        assert people.sign_in(world.services, "pat@example.com", PASSWORD, client_address=ADDRESS).token


def test_a_short_password_or_a_taken_email_is_refused(world: World) -> None:
    with pytest.raises(InvalidInput):
        people.sign_up(world.services, "pat@example.com", "short", client_address=ADDRESS)
    people.sign_up(world.services, "pat@example.com", PASSWORD, client_address=ADDRESS)
    with pytest.raises(AlreadyExists, match="An account with that email exists"):
        people.sign_up(world.services, "PAT@example.com", PASSWORD, client_address=ADDRESS)


def test_a_new_password_ends_every_other_sign_in(world: World) -> None:
    people.sign_up(world.services, "pat@example.com", PASSWORD, client_address=ADDRESS)
    here, elsewhere = (
        people.sign_in(world.services, "pat@example.com", PASSWORD, client_address=ADDRESS).token
        for _ in range(2)
    )
    me = people.authenticate_user_token(world.services, here)
    with pytest.raises(Unauthenticated, match="current password is wrong"):
        people.change_password(
            world.services, me, here, "not it", "a newer long password", client_address=ADDRESS
        )
    ended = people.change_password(
        world.services, me, here, PASSWORD, "a newer long password", client_address=ADDRESS
    )
    assert ended == 1
    assert people.authenticate_user_token(world.services, here).user_id == me.user_id
    with pytest.raises(Unauthenticated):
        people.authenticate_user_token(world.services, elsewhere)


def test_sessions_expire_on_the_clock(world: World) -> None:
    people.sign_up(world.services, "pat@example.com", PASSWORD, client_address=ADDRESS)
    token = people.sign_in(world.services, "pat@example.com", PASSWORD, client_address=ADDRESS).token
    world.clock.advance(world.services.config.session_lifetime + timedelta(seconds=1))
    with pytest.raises(Unauthenticated):
        people.authenticate_user_token(world.services, token)


def test_an_invitation_is_accepted_once_by_a_person(world: World, maker: Maker) -> None:
    child = organizations.create_organization(world.services, "Plant 2", parent=maker.admin).organization
    invited = people.invite(world.services, maker.admin, child.id, "pat@example.com")
    with pytest.raises(PermissionDenied, match="API keys cannot"):
        people.accept_invitation(world.services, maker.admin, invited.code)
    pat = owner_of(world, "pat@example.com")
    assert people.accept_invitation(world.services, pat, invited.code).id == child.id
    with pytest.raises(NotFound, match="already accepted"):
        people.accept_invitation(world.services, owner_of(world, "sam@example.com"), invited.code)
    assert (child.id, Role.ADMIN) in [(org.id, role) for org, role in people.me(world.services, pat)[1]]


def test_keys_reach_their_organization_and_below_never_above(
    world: World, maker: Maker, rival: Maker
) -> None:
    child = organizations.create_organization(world.services, "Plant 2", parent=maker.admin)
    child_admin = organizations.authenticate_api_key(world.services, child.admin_key.secret)
    with pytest.raises(NotFound):
        organizations.get_organization(world.services, child_admin, maker.admin.organization.id)
    assert organizations.get_organization(world.services, maker.admin, child.organization.id).id
    with pytest.raises(NotFound):
        organizations.create_api_key(
            world.services,
            rival.admin,
            name="x",
            scopes=frozenset({Scope.READ}),
            organization_id=child.organization.id,
        )
    with pytest.raises(PermissionDenied):
        organizations.create_organization(world.services, "Nested", parent=maker.key(Scope.FACTORY))


def test_a_revoked_key_stops_working_at_once(world: World, maker: Maker) -> None:
    created = organizations.create_api_key(
        world.services, maker.admin, name="line", scopes=frozenset({Scope.READ})
    )
    organizations.revoke_api_key(world.services, maker.admin, created.key.id)
    with pytest.raises(Unauthenticated, match="unknown or revoked"):
        organizations.authenticate_api_key(world.services, created.secret)


# -- transfers -------------------------------------------------------------------------------


@pytest.fixture
def owned(world: World, maker: Maker, owner: Principal) -> str:
    batch = static_batch(maker, count=1)
    device_id = next(iter(claims_rows(maker, batch.id)))
    claims.claim_device(world.services, owner, claim_code_of(maker, device_id), client_address=ADDRESS)
    return device_id


def claims_rows(maker: Maker, batch_id: str) -> list[str]:
    return [row.device_id for row in static_tokens.batch_labels(maker.services, maker.admin, batch_id).rows]


def test_a_device_moves_to_whoever_accepts_the_offer(world: World, owner: Principal, owned: str) -> None:
    offer = transfers.offer_transfer(world.services, owner, owned)
    receiver = owner_of(world, "receiver@example.com")
    moved = transfers.accept_transfer(world.services, receiver, offer.code, client_address=ADDRESS)
    assert moved.owner_organization_id == receiver.organization.id
    with pytest.raises(NotFound):
        devices.get_device(world.services, owner, owned)
    with pytest.raises(Gone):
        transfers.accept_transfer(
            world.services, owner_of(world, "late@example.com"), offer.code, client_address=ADDRESS
        )


def test_an_offer_ends_when_cancelled_expired_or_replaced(world: World, owner: Principal, owned: str) -> None:
    receiver = owner_of(world, "receiver@example.com")
    first = transfers.offer_transfer(world.services, owner, owned)
    second = transfers.offer_transfer(world.services, owner, owned)  # replaces the first
    with pytest.raises(Gone):
        transfers.accept_transfer(world.services, receiver, first.code, client_address=ADDRESS)
    assert transfers.cancel_transfers(world.services, owner, owned) == 1
    with pytest.raises(Gone):
        transfers.accept_transfer(world.services, receiver, second.code, client_address=ADDRESS)
    third = transfers.offer_transfer(world.services, owner, owned)
    world.clock.advance(timedelta(days=365))
    with pytest.raises(Gone):
        transfers.accept_transfer(world.services, receiver, third.code, client_address=ADDRESS)


def test_only_the_owner_offers_and_nobody_accepts_their_own(
    world: World, maker: Maker, owner: Principal, owned: str
) -> None:
    with pytest.raises(NotFound):
        transfers.offer_transfer(world.services, maker.admin, owned)  # the maker is not the owner
    offer = transfers.offer_transfer(world.services, owner, owned)
    with pytest.raises(Conflict, match="already yours"):
        transfers.accept_transfer(world.services, owner, offer.code, client_address=ADDRESS)
