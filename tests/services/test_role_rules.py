"""Roles of people in organizations (owner, admin, operator, viewer), on fakes: each role is
what its scope allows, and only owners make owners."""

from __future__ import annotations

import pytest

from lineside.domain.errors import PermissionDenied
from lineside.domain.models import Principal, Role, Scope
from lineside.services import claims, devices, organizations, people, products
from lineside.services.ports import DeviceFilter
from tests.services.conftest import Maker, World, owner_of
from tests.services.helpers import claim_code_of, static_batch


def member(world: World, maker: Maker, role: Role, email: str) -> Principal:
    """A person invited into the maker's organization with ``role``, acting for it."""
    invited = people.invite(world.services, maker.admin, maker.admin.organization.id, email, role)
    person = owner_of(world, email)
    people.accept_invitation(world.services, person, invited.code)
    token = people.sign_in(world.services, email, "a long enough password", client_address="192.0.2.1").token
    return people.authenticate_user_token(world.services, token, maker.admin.organization.id)


def test_a_person_owns_their_personal_organization(world: World, owner: Principal) -> None:
    assert (owner.role, owner.scopes) == (Role.OWNER, frozenset({Scope.ADMIN}))


def test_a_viewer_reads_and_changes_nothing(world: World, maker: Maker) -> None:
    viewer = member(world, maker, Role.VIEWER, "viewer@example.com")
    product = maker.product()
    assert viewer.role is Role.VIEWER
    assert products.get_product(world.services, viewer, product.id).id == product.id
    assert (
        devices.list_devices(world.services, viewer, filters=DeviceFilter(), cursor=None, limit=5).items == []
    )
    with pytest.raises(
        PermissionDenied, match=r"Your role here \(viewer\) cannot do this: it takes an operator"
    ):
        devices.define_device(world.services, viewer, product_id=product.id, serial_number="SN-1")


def test_an_operator_runs_the_line_but_manages_nothing(world: World, maker: Maker) -> None:
    operator = member(world, maker, Role.OPERATOR, "operator@example.com")
    product = maker.product()
    assert devices.define_device(world.services, operator, product_id=product.id, serial_number="SN-1").id
    with pytest.raises(PermissionDenied):
        organizations.create_api_key(world.services, operator, name="k", scopes=frozenset({Scope.READ}))
    with pytest.raises(PermissionDenied):
        products.create_product(world.services, operator, name="Other", fields=[])


def test_only_an_owner_makes_owners(world: World, maker: Maker) -> None:
    admin = member(world, maker, Role.ADMIN, "admin@example.com")
    organization_id = maker.admin.organization.id
    for not_an_owner in (admin, maker.admin):  # an admin person, an admin API key
        with pytest.raises(PermissionDenied, match="Only an owner"):
            people.invite(world.services, not_an_owner, organization_id, "next@example.com", Role.OWNER)
    assert (
        people.invite(world.services, admin, organization_id, "next@example.com", Role.OPERATOR).role
        is Role.OPERATOR
    )
    first_owner = people.invite(
        world.services,
        organizations.operator_principal(world.services, organization_id),
        organization_id,
        "boss@example.com",
        Role.OWNER,
    )
    assert first_owner.role is Role.OWNER


def test_a_viewer_cannot_claim_devices_into_the_organization(world: World, maker: Maker) -> None:
    viewer_in_maker = member(world, maker, Role.VIEWER, "viewer@example.com")
    personal = people.authenticate_user_token(
        world.services,
        people.sign_in(
            world.services, "viewer@example.com", "a long enough password", client_address="192.0.2.1"
        ).token,
    )
    assert viewer_in_maker.organization.id == maker.admin.organization.id
    batch = static_batch(maker, count=1)
    device_id = next(
        iter(
            devices.list_devices(
                world.services, maker.admin, filters=DeviceFilter(batch_id=batch.id), cursor=None, limit=1
            ).items
        )
    ).id
    with pytest.raises(PermissionDenied, match="viewer"):
        claims.claim_device(
            world.services,
            personal,
            claim_code_of(maker, device_id),
            client_address="192.0.2.1",
            organization_id=maker.admin.organization.id,
        )


def test_admins_see_the_organizations_people_and_their_roles(world: World, maker: Maker) -> None:
    viewer = member(world, maker, Role.VIEWER, "viewer@example.com")
    member(world, maker, Role.OPERATOR, "operator@example.com")
    listed = [(user.email, role) for user, role in people.members(world.services, maker.admin)]
    assert listed == [("operator@example.com", Role.OPERATOR), ("viewer@example.com", Role.VIEWER)]
    with pytest.raises(PermissionDenied):
        people.members(world.services, viewer)
