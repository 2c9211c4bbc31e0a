"""People: sign-up (with a personal organization), sign-in tokens, invitations."""

from __future__ import annotations

import re
from dataclasses import dataclass

from lineside.domain.errors import (
    AlreadyExists,
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from lineside.domain.events import EventType, SubjectRef, new_event
from lineside.domain.identifiers import is_uuid, new_id
from lineside.domain.models import ROLE_SCOPES, Organization, OrganizationKind, Principal, Role, Scope, User
from lineside.domain.secret_tokens import SecretKind, generate_secret
from lineside.services.attempts import Charge, keyed
from lineside.services.context import ServiceContext, not_found, require
from lineside.services.organizations import OPERATOR_ACTOR
from lineside.services.ports import UnitOfWork

EMAIL = re.compile(r"^[^@\s\x00-\x1f]{1,64}@[^@\s\x00-\x1f]{1,255}\.[^@\s\x00-\x1f.]{1,63}\Z")
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024


@dataclass(frozen=True)
class SignedIn:
    user: User
    token: str  # shown once; only its keyed hash is stored
    expires_in_seconds: int


@dataclass(frozen=True)
class CreatedInvitation:
    id: str
    organization_id: str
    email: str
    code: str  # shown once
    role: Role = Role.ADMIN


def normalize_email(email: str) -> str:
    # Matched before lower-casing, which can lengthen a few letters past the limits.
    email = email.strip()
    if not EMAIL.match(email):
        raise InvalidInput("That is not an email address.")
    return email.lower()


def _check_password(password: str) -> None:
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise InvalidInput(f"A password has {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters.")


def sign_up(ctx: ServiceContext, email: str, password: str, *, client_address: str) -> User:
    """A person, with a personal organization that devices they claim move into.

    Sign-ups are limited per client address (each account would otherwise buy its own
    budget of claim guesses); the slot is taken before the password is hashed, so a flood
    costs no argon2 work past the limit."""
    email = normalize_email(email)
    _check_password(password)
    config = ctx.config
    Charge(ctx, config.sign_in_window, "sign-ups from your network").take(
        f"signup:address:{client_address}", config.sign_ups_per_address_per_window
    )
    password_hash = ctx.passwords.hash(password)
    now = ctx.clock()
    organization_id = new_id()
    organization = Organization(
        id=organization_id,
        name=email,
        parent_id=None,
        path=f"/{organization_id}/",
        created_at=now,
        kind=OrganizationKind.PERSONAL,
    )
    user = User(id=new_id(), email=email, personal_organization_id=organization_id, created_at=now)
    with ctx.unit_of_work() as uow:
        if uow.users.find_by_email(email) is not None:
            raise AlreadyExists("An account with that email exists; sign in instead.")
        uow.organizations.add(organization)
        uow.users.add(user, password_hash)
        uow.users.add_membership(user.id, organization_id, now, Role.OWNER)
        uow.events.add(
            new_event(
                EventType.USER_SIGNED_UP,
                SubjectRef(user.id, organization_id),
                actor=f"user:{user.id}",
                at=now,
            )
        )
        uow.commit()
    return user


def sign_in(ctx: ServiceContext, email: str, password: str, *, client_address: str) -> SignedIn:
    """A bearer token for the API and the web pages' session cookie.

    Wrong passwords are limited per account and per client address: slots are taken
    before the (costly) password check and given back when it succeeds."""
    try:
        email = normalize_email(email)
    except InvalidInput:
        email = ""
    config = ctx.config
    charge = Charge(ctx, config.sign_in_window, "failed sign-ins")
    charge.take(f"signin:address:{client_address}", config.sign_in_address_attempts_per_window)
    charge.take(f"signin:account:{keyed(email)}", config.sign_in_attempts_per_window)
    with ctx.unit_of_work(write=False) as uow:
        found = uow.users.find_by_email(email) if email else None
    # Verified even for an unknown email, so timing does not tell which accounts exist.
    if not ctx.passwords.verify(found[1] if found else None, password) or found is None:
        raise Unauthenticated("The email or the password is wrong.")
    charge.refund()
    user = found[0]
    token = generate_secret(SecretKind.USER_TOKEN)
    now = ctx.clock()
    lifetime = ctx.config.session_lifetime
    with ctx.unit_of_work() as uow:
        uow.users.add_session(new_id(), user.id, ctx.hasher.hash(token), now, now + lifetime)
        uow.commit()
    return SignedIn(user=user, token=token, expires_in_seconds=int(lifetime.total_seconds()))


def change_password(
    ctx: ServiceContext, principal: Principal, token: str, current: str, new: str, *, client_address: str
) -> int:
    """Set a new password after checking the current one; every other sign-in of the person
    ends (this one, ``token``, goes on). Wrong current passwords count as failed sign-ins.
    Returns how many other sign-ins ended."""
    if principal.user_id is None:
        raise PermissionDenied("Only a signed-in person has a password to change.")
    _check_password(new)
    with ctx.unit_of_work(write=False) as uow:
        user = uow.users.get(principal.user_id)
        current_hash = uow.users.password_hash(principal.user_id)
    if user is None:
        raise Unauthenticated("The account no longer exists.")
    config = ctx.config
    charge = Charge(ctx, config.sign_in_window, "failed sign-ins")
    charge.take(f"signin:address:{client_address}", config.sign_in_address_attempts_per_window)
    charge.take(f"signin:account:{keyed(user.email)}", config.sign_in_attempts_per_window)
    if not ctx.passwords.verify(current_hash, current):
        raise Unauthenticated("The current password is wrong.")
    charge.refund()
    new_hash = ctx.passwords.hash(new)
    now = ctx.clock()
    with ctx.unit_of_work() as uow:
        uow.users.set_password_hash(user.id, new_hash)
        ended = uow.users.revoke_sessions_except(user.id, ctx.hasher.hash(token), now)
        uow.events.add(
            new_event(
                EventType.USER_PASSWORD_CHANGED,
                SubjectRef(user.id, user.personal_organization_id),
                actor=principal.actor,
                at=now,
                other_sessions_ended=ended,
            )
        )
        uow.commit()
    return ended


def sign_out(ctx: ServiceContext, token: str) -> None:
    with ctx.unit_of_work() as uow:
        uow.users.revoke_session(ctx.hasher.hash(token), ctx.clock())
        uow.commit()


def authenticate_user_token(ctx: ServiceContext, token: str, organization_id: str | None = None) -> Principal:
    """A signed-in person, acting for their personal organization or, when
    ``organization_id`` names one, for an organization they were invited into."""
    with ctx.unit_of_work(write=False) as uow:
        user = uow.users.find_session_user(ctx.hasher.hash(token), ctx.clock())
        if user is None:
            raise Unauthenticated("The sign-in token is unknown, expired or signed out.")
        wanted = organization_id or user.personal_organization_id
        membership = _membership(uow, user.id, wanted)
    if membership is None:
        raise not_found("organization you belong to", wanted)
    return user_principal(user, *membership)


def user_principal(user: User, organization: Organization, role: Role) -> Principal:
    """A person acting for ``organization``: what their role there allows, as a key's scopes."""
    return Principal(organization, ROLE_SCOPES[role], f"user:{user.id}", user_id=user.id, role=role)


def acting_organization(uow: UnitOfWork, principal: Principal, organization_id: str | None) -> Organization:
    """The organization a person acts for: their own, or one they were invited into."""
    if organization_id is None or organization_id == principal.organization.id:
        return principal.organization
    if principal.user_id is None:
        # Checked before querying: PostgreSQL refuses some strings (a NUL) outright.
        within = principal.organization.path
        found = uow.organizations.get(organization_id, within=within) if is_uuid(organization_id) else None
    else:
        membership = _membership(uow, principal.user_id, organization_id)
        found = membership[0] if membership else None
        if membership is not None and Scope.ADMIN not in ROLE_SCOPES[membership[1]]:
            raise PermissionDenied(
                f"Your role in that organization ({membership[1].value}) cannot take devices into it."
            )
    if found is None:
        raise not_found("organization", organization_id)
    return found


def _membership(uow: UnitOfWork, user_id: str, organization_id: str) -> tuple[Organization, Role] | None:
    """The person's membership of ``organization_id`` (the organization and their role), if any."""
    return next(
        ((org, role) for org, role in uow.users.memberships_of(user_id) if org.id == organization_id), None
    )


def me(ctx: ServiceContext, principal: Principal) -> tuple[User, list[tuple[Organization, Role]]]:
    """The signed-in person, and each organization they belong to with their role there."""
    if principal.user_id is None:
        raise NotFound("This call is for signed-in people, not API keys.")
    with ctx.unit_of_work(write=False) as uow:
        user = uow.users.get(principal.user_id)
        memberships = uow.users.memberships_of(principal.user_id)
    if user is None:
        raise Unauthenticated("The account no longer exists.")
    return user, memberships


def invite(
    ctx: ServiceContext, principal: Principal, organization_id: str, email: str, role: Role = Role.ADMIN
) -> CreatedInvitation:
    """Invite a person into one of the caller's organizations (e.g. a client's) with ``role``.
    Only an owner (or the operator) makes owners; an admin invites admins and below."""
    require(principal, Scope.ADMIN)
    if role is Role.OWNER and not _makes_owners(principal):
        raise PermissionDenied("Only an owner of the organization can make another owner.")
    email = normalize_email(email)
    code = generate_secret(SecretKind.INVITATION)
    now = ctx.clock()
    invitation_id = new_id()
    with ctx.unit_of_work() as uow:
        organization = uow.organizations.get(organization_id, within=principal.organization.path)
        if organization is None:
            raise not_found("organization", organization_id)
        expires = now + ctx.config.invitation_lifetime
        uow.users.add_invitation(
            invitation_id, organization.id, email, ctx.hasher.hash(code), now, expires, role
        )
        uow.events.add(
            new_event(
                EventType.INVITATION_CREATED,
                SubjectRef(invitation_id, organization.id),
                actor=principal.actor,
                at=now,
                email=email,
                role=role.value,
            )
        )
        uow.commit()
    return CreatedInvitation(invitation_id, organization.id, email, code, role)


MAX_MEMBERS_SHOWN = 500


def members(ctx: ServiceContext, principal: Principal) -> list[tuple[User, Role]]:
    """The people of the caller's organization with their roles (admins only: emails)."""
    require(principal, Scope.ADMIN)
    with ctx.unit_of_work(write=False) as uow:
        return uow.users.members_of(principal.organization.id, MAX_MEMBERS_SHOWN)


def _makes_owners(principal: Principal) -> bool:
    # An owner, or the operator at the server's command line; never an API key or an admin.
    return principal.role is Role.OWNER or principal.actor == OPERATOR_ACTOR


@dataclass(frozen=True)
class RoleChange:
    """A member's role in an organization, before and after a change (the same if unchanged)."""

    user: User
    organization_id: str
    previous: Role
    role: Role


def change_role(
    ctx: ServiceContext,
    principal: Principal,
    user_id: str,
    role: Role,
    *,
    organization_id: str | None = None,
) -> RoleChange:
    """Give a member of the caller's organization (or of one below it, ``organization_id``)
    another role. Only an owner (or the operator) makes or unmakes an owner, and the last
    owner stays one: the organization is never left without. Someone who is not a member
    there is not found, whoever else they belong to."""
    require(principal, Scope.ADMIN)
    if role is Role.OWNER and not _makes_owners(principal):
        raise PermissionDenied("Only an owner of the organization can make another owner.")
    now = ctx.clock()
    with ctx.unit_of_work() as uow:
        organization = _at_or_below(uow, principal, organization_id)
        owners = uow.users.owners_of(organization.id, lock=True)  # first, always: see the port
        previous = uow.users.role_in(user_id, organization.id, lock=True) if is_uuid(user_id) else None
        user = uow.users.get(user_id) if previous is not None else None
        if previous is None or user is None:
            raise not_found("member of this organization", user_id)
        if previous is Role.OWNER and role is not Role.OWNER:
            if not _makes_owners(principal):
                raise PermissionDenied("Only an owner of the organization can change an owner's role.")
            if owners == [user_id]:
                raise Conflict(
                    f"{user.email} is the organization's last owner: make another member an owner first."
                )
        if previous is not role:
            uow.users.set_role(user_id, organization.id, role)
            uow.events.add(
                new_event(
                    EventType.MEMBERSHIP_ROLE_CHANGED,
                    SubjectRef(user_id, organization.id),
                    actor=principal.actor,
                    at=now,
                    old_role=previous.value,
                    new_role=role.value,
                )
            )
            uow.commit()
    return RoleChange(user, organization.id, previous, role)


def _at_or_below(uow: UnitOfWork, principal: Principal, organization_id: str | None) -> Organization:
    """The caller's organization, or the one of ``organization_id`` at or below it."""
    if organization_id is None or organization_id == principal.organization.id:
        return principal.organization
    within = principal.organization.path
    found = uow.organizations.get(organization_id, within=within) if is_uuid(organization_id) else None
    if found is None:
        raise not_found("organization", organization_id)
    return found


def accept_invitation(ctx: ServiceContext, principal: Principal, code: str) -> Organization:
    if principal.user_id is None:
        raise PermissionDenied("Sign in as a person to accept an invitation; API keys cannot.")
    now = ctx.clock()
    with ctx.unit_of_work() as uow:
        found = uow.users.open_invitation(ctx.hasher.hash(code), now)
        if found is None:
            raise NotFound("The invitation is unknown, expired or already accepted.")
        invitation_id, organization_id, _email, role = found
        organization = uow.organizations.get(organization_id, within="/")
        if organization is None or not uow.users.accept_invitation(invitation_id, now):
            raise NotFound("The invitation is unknown, expired or already accepted.")
        uow.users.add_membership(principal.user_id, organization_id, now, role)
        uow.events.add(
            new_event(
                EventType.INVITATION_ACCEPTED,
                SubjectRef(invitation_id, organization_id),
                actor=principal.actor,
                at=now,
            )
        )
        uow.commit()
    return organization
