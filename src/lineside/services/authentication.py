"""Who is calling, from the bearer credential they present."""

from __future__ import annotations

from lineside.domain.errors import Unauthenticated
from lineside.domain.models import Principal
from lineside.domain.secret_tokens import SecretKind
from lineside.services.context import ServiceContext
from lineside.services.credentials import authenticate_device
from lineside.services.organizations import authenticate_api_key
from lineside.services.people import authenticate_user_token


def authenticate_caller(ctx: ServiceContext, token: str, organization_id: str | None = None) -> Principal:
    """An API key (lsk_) or a signed-in person's token (lsu_); a person may name one of
    their organizations to act for (``organization_id``), an API key acts for its own."""
    if token.startswith(SecretKind.USER_TOKEN.value):
        return authenticate_user_token(ctx, token, organization_id)
    if token.startswith(SecretKind.API_KEY.value):
        return authenticate_api_key(ctx, token)
    raise Unauthenticated("The bearer token is neither a Lineside API key nor a sign-in token.")


def still_valid(ctx: ServiceContext, token: str) -> None:
    """Raise Unauthenticated when a credential that once worked no longer does."""
    if token.startswith(SecretKind.DEVICE_TOKEN.value):
        authenticate_device(ctx, token)
    elif token.startswith((SecretKind.API_KEY.value, SecretKind.USER_TOKEN.value)):
        authenticate_caller(ctx, token)
