"""Changing a person's role in an organization (issue 15), on fakes: admins change roles up to
admin, only owners make or unmake owners, the last owner stays one, and a person who is not
a member of the caller's organization is not found."""

from __future__ import annotations

import pytest

from lineside.domain.errors import Conflict, NotFound, PermissionDenied
from lineside.domain.events import EventType
from lineside.domain.models import Principal, Role, Scope
from lineside.services import organizations, people
from tests.services.conftest import Maker, World, owner_of
from tests.services.test_role_rules import member

PASSWORD = "a long enough password"


def acting(world: World, email: str, organization_id: str) -> Principal:
    token = people.sign_in(world.services, email, PASSWORD, client_address="192.0.2.1").token
    return people.authenticate_user_token(world.services, token, organization_id)


def owner_in(world: World, maker: Maker, email: str) -> Principal:
    """A person made an owner of the maker's organization (by the operator, who may)."""
    organization_id = maker.admin.organization.id
    operator = organizations.operator_principal(world.services, organization_id)
    invited = people.invite(world.services, operator, organization_id, email, Role.OWNER)
    people.accept_invitation(world.services, owner_of(world, email), invited.code)
    return acting(world, email, organization_id)


def roles(world: World, maker: Maker) -> dict[str, Role]:
    return {user.email: role for user, role in people.members(world.services, maker.admin)}


def role_events(world: World) -> list[dict[str, object]]:
    changed = [e for e in world.database.tables.events if e.type is EventType.MEMBERSHIP_ROLE_CHANGED]
    return [{"subject": e.subject_id, "actor": e.actor, **e.data} for e in changed]


def test_an_admin_makes_an_operator_a_viewer_who_then_acts_as_one(world: World, maker: Maker) -> None:
    admin = member(world, maker, Role.ADMIN, "admin@example.com")
    operator = member(world, maker, Role.OPERATOR, "operator@example.com")
    assert operator.user_id is not None

    changed = people.change_role(world.services, admin, operator.user_id, Role.VIEWER)

    assert (changed.user.email, changed.previous, changed.role) == (
        "operator@example.com",
        Role.OPERATOR,
        Role.VIEWER,
    )
    assert changed.organization_id == maker.admin.organization.id
    assert roles(world, maker)["operator@example.com"] is Role.VIEWER
    again = acting(world, "operator@example.com", maker.admin.organization.id)
    assert (again.role, again.scopes) == (Role.VIEWER, frozenset({Scope.READ}))
    assert role_events(world) == [
        {"subject": operator.user_id, "actor": admin.actor, "old_role": "operator", "new_role": "viewer"}
    ]
    assert world.database.tables.events[-1].organization_id == maker.admin.organization.id


def test_the_same_role_again_changes_nothing_and_records_nothing(world: World, maker: Maker) -> None:
    viewer = member(world, maker, Role.VIEWER, "viewer@example.com")
    assert viewer.user_id is not None
    commits = world.database.commits
    unchanged = people.change_role(world.services, maker.admin, viewer.user_id, Role.VIEWER)
    assert (unchanged.previous, unchanged.role) == (Role.VIEWER, Role.VIEWER)
    assert world.database.commits == commits
    assert role_events(world) == []


def test_only_an_owner_makes_or_unmakes_an_owner(world: World, maker: Maker) -> None:
    admin = member(world, maker, Role.ADMIN, "admin@example.com")
    operator = member(world, maker, Role.OPERATOR, "operator@example.com")
    boss = owner_in(world, maker, "boss@example.com")
    assert operator.user_id is not None and boss.user_id is not None and admin.user_id is not None
    for not_an_owner in (admin, maker.admin):  # an admin person, an admin API key
        with pytest.raises(PermissionDenied, match="Only an owner"):
            people.change_role(world.services, not_an_owner, operator.user_id, Role.OWNER)
        with pytest.raises(PermissionDenied, match="Only an owner"):
            people.change_role(world.services, not_an_owner, boss.user_id, Role.ADMIN)
    assert roles(world, maker)["boss@example.com"] is Role.OWNER

    people.change_role(world.services, boss, admin.user_id, Role.OWNER)
    assert roles(world, maker)["admin@example.com"] is Role.OWNER
    operator_at_the_server = organizations.operator_principal(world.services, maker.admin.organization.id)
    people.change_role(world.services, operator_at_the_server, admin.user_id, Role.ADMIN)
    assert roles(world, maker)["admin@example.com"] is Role.ADMIN


def test_the_last_owner_stays_an_owner(world: World, maker: Maker) -> None:
    boss = owner_in(world, maker, "boss@example.com")
    assert boss.user_id is not None
    with pytest.raises(Conflict, match=r"boss@example\.com is the organization's last owner"):
        people.change_role(world.services, boss, boss.user_id, Role.ADMIN)
    assert roles(world, maker)["boss@example.com"] is Role.OWNER

    deputy = member(world, maker, Role.ADMIN, "deputy@example.com")
    assert deputy.user_id is not None
    people.change_role(world.services, boss, deputy.user_id, Role.OWNER)
    people.change_role(world.services, boss, boss.user_id, Role.ADMIN)  # one owner is left: the deputy
    assert roles(world, maker) == {"boss@example.com": Role.ADMIN, "deputy@example.com": Role.OWNER}
    with pytest.raises(Conflict, match="last owner"):
        people.change_role(
            world.services,
            acting(world, "deputy@example.com", maker.admin.organization.id),
            deputy.user_id,
            Role.VIEWER,
        )


def test_a_viewer_or_an_operator_changes_no_role(world: World, maker: Maker) -> None:
    viewer = member(world, maker, Role.VIEWER, "viewer@example.com")
    operator = member(world, maker, Role.OPERATOR, "operator@example.com")
    assert viewer.user_id is not None and operator.user_id is not None
    with pytest.raises(PermissionDenied, match=r"\(viewer\)"):
        people.change_role(world.services, viewer, operator.user_id, Role.VIEWER)
    with pytest.raises(PermissionDenied, match=r"\(operator\)"):
        people.change_role(world.services, operator, operator.user_id, Role.ADMIN)
    assert roles(world, maker)["operator@example.com"] is Role.OPERATOR


def test_a_person_outside_the_organization_is_not_found(world: World, maker: Maker, rival: Maker) -> None:
    theirs = member(world, rival, Role.OPERATOR, "theirs@example.com")
    outsider = owner_of(world, "outsider@example.com")
    assert theirs.user_id is not None and outsider.user_id is not None
    for user_id in (theirs.user_id, outsider.user_id, "0193f7c2-5a1e-7c41-9a53-0e3f1b2c4d5e", "not-an-id"):
        with pytest.raises(NotFound, match="No member of this organization"):
            people.change_role(world.services, maker.admin, user_id, Role.VIEWER)
    with pytest.raises(NotFound, match="No organization"):
        people.change_role(
            world.services,
            maker.admin,
            theirs.user_id,
            Role.VIEWER,
            organization_id=rival.admin.organization.id,
        )
    assert {user.email: role for user, role in people.members(world.services, rival.admin)} == {
        "theirs@example.com": Role.OPERATOR
    }
    assert role_events(world) == []


def test_a_parent_changes_roles_in_its_client_organization_and_not_the_other_way(
    world: World, maker: Maker
) -> None:
    client = organizations.create_organization(world.services, "Client", parent=maker.admin)
    client_admin = organizations.authenticate_api_key(world.services, client.admin_key.secret)
    person = owner_of(world, "client-person@example.com")
    invited = people.invite(
        world.services, maker.admin, client.organization.id, "client-person@example.com", Role.ADMIN
    )
    people.accept_invitation(world.services, person, invited.code)
    assert person.user_id is not None

    changed = people.change_role(
        world.services, maker.admin, person.user_id, Role.VIEWER, organization_id=client.organization.id
    )

    assert (changed.organization_id, changed.previous, changed.role) == (
        client.organization.id,
        Role.ADMIN,
        Role.VIEWER,
    )
    with pytest.raises(NotFound):
        people.change_role(
            world.services,
            client_admin,
            person.user_id,
            Role.VIEWER,
            organization_id=maker.admin.organization.id,
        )
