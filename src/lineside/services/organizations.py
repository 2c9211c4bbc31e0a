"""Organizations, sub-organizations and their API keys."""

from __future__ import annotations

from dataclasses import dataclass, replace

from lineside.domain.errors import InvalidInput, Unauthenticated
from lineside.domain.events import EventType, SubjectRef, new_event
from lineside.domain.identifiers import is_uuid, new_id
from lineside.domain.models import ApiKey, Organization, Principal, Scope
from lineside.domain.secret_tokens import SecretKind, display_prefix, generate_secret
from lineside.domain.text import clean_name
from lineside.services.context import ServiceContext, not_found, require
from lineside.services.ports import UnitOfWork

OPERATOR_ACTOR = "cli"


@dataclass(frozen=True)
class CreatedApiKey:
    key: ApiKey
    secret: str  # shown once, never stored


@dataclass(frozen=True)
class CreatedOrganization:
    organization: Organization
    admin_key: CreatedApiKey


def _issue_key(
    ctx: ServiceContext,
    uow: UnitOfWork,
    organization: Organization,
    name: str,
    scopes: frozenset[Scope],
    actor: str,
) -> CreatedApiKey:
    if not scopes:
        raise InvalidInput("An API key needs at least one scope.")
    secret = generate_secret(SecretKind.API_KEY)
    now = ctx.clock()
    key = ApiKey(
        id=new_id(),
        organization_id=organization.id,
        name=clean_name(name, "API key"),
        scopes=scopes,
        prefix=display_prefix(secret),
        created_at=now,
    )
    uow.api_keys.add(key, ctx.hasher.hash(secret))
    uow.events.add(
        new_event(
            EventType.API_KEY_CREATED,
            SubjectRef(key.id, organization.id),
            actor=actor,
            at=now,
            name=key.name,
            scopes=sorted(scope.value for scope in scopes),
        )
    )
    return CreatedApiKey(key=key, secret=secret)


def create_organization(
    ctx: ServiceContext, name: str, *, parent: Principal | None = None, actor: str = OPERATOR_ACTOR
) -> CreatedOrganization:
    """A top-level organization (parent None, operators only) or a sub-organization."""
    if parent is not None:
        require(parent, Scope.ADMIN)
        actor = parent.actor
    organization_id = new_id()
    parent_org = parent.organization if parent else None
    organization = Organization(
        id=organization_id,
        name=clean_name(name, "organization"),
        parent_id=parent_org.id if parent_org else None,
        path=f"{parent_org.path if parent_org else '/'}{organization_id}/",
        created_at=ctx.clock(),
    )
    with ctx.unit_of_work() as uow:
        uow.organizations.add(organization)
        uow.events.add(
            new_event(
                EventType.ORGANIZATION_CREATED,
                SubjectRef(organization.id, organization.id),
                actor=actor,
                at=organization.created_at,
                name=organization.name,
                parent_id=organization.parent_id,
            )
        )
        key = _issue_key(ctx, uow, organization, "initial admin key", frozenset({Scope.ADMIN}), actor)
        uow.commit()
    return CreatedOrganization(organization=organization, admin_key=key)


def list_organizations(ctx: ServiceContext, principal: Principal) -> list[Organization]:
    require(principal, Scope.READ)
    with ctx.unit_of_work(write=False) as uow:
        return uow.organizations.list(within=principal.organization.path)


def get_organization(ctx: ServiceContext, principal: Principal, organization_id: str) -> Organization:
    require(principal, Scope.READ)
    with ctx.unit_of_work(write=False) as uow:
        organization = (
            uow.organizations.get(organization_id, within=principal.organization.path)
            if is_uuid(organization_id)  # PostgreSQL cannot even compare text holding a NUL
            else None
        )
    if organization is None:
        raise not_found("organization", organization_id)
    return organization


def create_api_key(
    ctx: ServiceContext,
    principal: Principal,
    *,
    name: str,
    scopes: frozenset[Scope],
    organization_id: str | None = None,
) -> CreatedApiKey:
    """A key for the caller's organization or one of its sub-organizations."""
    require(principal, Scope.ADMIN)
    with ctx.unit_of_work() as uow:
        target = principal.organization
        if organization_id is not None:
            found = (
                uow.organizations.get(organization_id, within=principal.organization.path)
                if is_uuid(organization_id)
                else None
            )
            if found is None:
                raise not_found("organization", organization_id)
            target = found
        created = _issue_key(ctx, uow, target, name, scopes, principal.actor)
        uow.commit()
    return created


def list_api_keys(ctx: ServiceContext, principal: Principal) -> list[ApiKey]:
    require(principal, Scope.ADMIN)
    with ctx.unit_of_work(write=False) as uow:
        return uow.api_keys.list(within=principal.organization.path)


def revoke_api_key(ctx: ServiceContext, principal: Principal, key_id: str) -> ApiKey:
    require(principal, Scope.ADMIN)
    with ctx.unit_of_work() as uow:
        key = uow.api_keys.get(key_id, within=principal.organization.path) if is_uuid(key_id) else None
        if key is None:
            raise not_found("API key", key_id)
        if key.revoked_at is None:
            now = ctx.clock()
            uow.api_keys.revoke(key.id, now)
            uow.events.add(new_event(EventType.API_KEY_REVOKED, key, actor=principal.actor, at=now))
            uow.commit()
            key = replace(key, revoked_at=now)
    return key


def authenticate_api_key(ctx: ServiceContext, secret: str) -> Principal:
    if not secret.startswith(SecretKind.API_KEY.value):
        raise Unauthenticated("The bearer token is not a Lineside API key.")
    with ctx.unit_of_work(write=False, snapshot=False) as uow:
        found = uow.api_keys.find_active_by_hash(ctx.hasher.hash(secret))
    if found is None:
        raise Unauthenticated("The API key is unknown or revoked.")
    key, organization = found
    return Principal(organization=organization, scopes=key.scopes, actor=f"api_key:{key.id}")


def operator_principal(ctx: ServiceContext, organization_id: str | None = None) -> Principal:
    """The local operator (the CLI on the server): an admin of one organization, or of all.

    Acting for every organization is only for reads and for commands that take their
    organization from the resource they touch (a batch goes to its product's organization).
    """
    if organization_id is None:
        everything = Organization(id="", name="operator", parent_id=None, path="/", created_at=ctx.clock())
        return Principal(everything, frozenset({Scope.ADMIN}), OPERATOR_ACTOR)
    with ctx.unit_of_work(write=False) as uow:
        organization = uow.organizations.get(organization_id, within="/")
    if organization is None:
        raise not_found("organization", organization_id)
    return Principal(organization, frozenset({Scope.ADMIN}), OPERATOR_ACTOR)
