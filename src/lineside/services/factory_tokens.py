"""Factory enrollment tokens: what a factory line's fixtures present to enroll DUTs.

A token admits Devices Under Test of one product and does nothing else (it reads nothing,
blesses nothing); revoking it stops the line at once. The secret is shown once; only its
keyed hash is stored.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from lineside.domain.errors import Unauthenticated
from lineside.domain.events import DomainEvent, EventType, new_event
from lineside.domain.factory import FactoryToken
from lineside.domain.identifiers import is_uuid, new_id
from lineside.domain.models import Principal, Product, Scope
from lineside.domain.secret_tokens import SecretKind, display_prefix, generate_secret
from lineside.domain.text import clean_name
from lineside.services.context import ServiceContext, not_found, require
from lineside.services.lookups import load_product
from lineside.services.ports import UnitOfWork

DEFAULT_NAME = "Factory line"
# Far longer than any token we issue, far shorter than anything that costs to hash.
MAX_SECRET_LENGTH = 200


@dataclass(frozen=True)
class CreatedFactoryToken:
    token: FactoryToken
    secret: str  # shown once, never stored


def _token_event(event_type: EventType, token: FactoryToken, actor: str, at: datetime) -> DomainEvent:
    return new_event(event_type, token, actor=actor, at=at, product_id=token.product_id, name=token.name)


def create_factory_token(
    ctx: ServiceContext, principal: Principal, *, product_id: str, name: str | None = None
) -> CreatedFactoryToken:
    """A token for one product's line, filed under the product's organization."""
    require(principal, Scope.FACTORY)
    secret = generate_secret(SecretKind.FACTORY_TOKEN)
    with ctx.unit_of_work() as uow:
        product = load_product(uow, principal, product_id)
        now = ctx.clock()
        token = FactoryToken(
            id=new_id(),
            organization_id=product.organization_id,
            product_id=product.id,
            name=clean_name(name if name is not None else DEFAULT_NAME, "factory token"),
            prefix=display_prefix(secret),
            created_by=principal.actor,
            created_at=now,
        )
        uow.factory_tokens.add(token, ctx.hasher.hash(secret))
        uow.events.add(_token_event(EventType.FACTORY_TOKEN_CREATED, token, principal.actor, now))
        uow.commit()
    return CreatedFactoryToken(token, secret)


def list_factory_tokens(ctx: ServiceContext, principal: Principal) -> list[FactoryToken]:
    require(principal, Scope.READ)
    with ctx.unit_of_work(write=False) as uow:
        return uow.factory_tokens.list(within=principal.organization.path)


def revoke_factory_token(ctx: ServiceContext, principal: Principal, token_id: str) -> FactoryToken:
    """Revoked at once; revoking again changes nothing and answers the same."""
    require(principal, Scope.FACTORY)
    with ctx.unit_of_work() as uow:
        token = (
            uow.factory_tokens.get(token_id, within=principal.organization.path)
            if is_uuid(token_id)
            else None
        )
        if token is None:
            raise not_found("factory enrollment token", token_id)
        if token.revoked_at is not None:
            return token
        now = ctx.clock()
        uow.factory_tokens.revoke(token.id, now)
        uow.events.add(_token_event(EventType.FACTORY_TOKEN_REVOKED, token, principal.actor, now))
        uow.commit()
    return replace(token, revoked_at=now)


def authenticate_factory_token(
    ctx: ServiceContext, uow: UnitOfWork, secret: str
) -> tuple[FactoryToken, Product]:
    """The unrevoked token ``secret`` is, with the product it admits DUTs of."""
    if not secret.startswith(SecretKind.FACTORY_TOKEN.value) or len(secret) > MAX_SECRET_LENGTH:
        raise Unauthenticated("The enrollment token is not a Lineside factory enrollment token (lsf_...).")
    found = uow.factory_tokens.find_active_by_hash(ctx.hasher.hash(secret))
    if found is None:
        raise Unauthenticated("The factory enrollment token is unknown or revoked.")
    return found
