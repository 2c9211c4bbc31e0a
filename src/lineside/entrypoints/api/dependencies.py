"""Request-scoped dependencies: the service context and the authenticated caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from lineside.bootstrap import Application
from lineside.domain.errors import Unauthenticated
from lineside.domain.models import Principal
from lineside.services.authentication import authenticate_caller, still_valid
from lineside.services.context import ServiceContext


def application(request: Request) -> Application:
    app: Application = request.app.state.lineside
    return app


def services(request: Request) -> ServiceContext:
    return application(request).services


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("Send 'Authorization: Bearer <key>'.")
    return token.strip()


def recheck_credential(ctx: ServiceContext, header: str) -> None:
    """Raise Unauthenticated if ``header`` bears an API key or device token that no longer works.

    For answers replayed without reaching a route (Idempotency-Key): a stored answer was
    given to this very header, so only a key or token revoked since then needs refusing.
    """
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer":
        still_valid(ctx, token.strip())


# Declared so the OpenAPI document (and the Authorize button of /docs) shows bearer auth;
# the header itself is parsed by bearer_token for a problem+json answer of our own.
api_key_scheme = HTTPBearer(auto_error=False, description="An API key (lsk_...) or a sign-in token (lsu_...)")


ORGANIZATION_HEADER = "Lineside-Organization"


def principal(
    request: Request,
    _declared: Annotated[HTTPAuthorizationCredentials | None, Security(api_key_scheme)],
) -> Principal:
    # People belong to several organizations (their own, clients' they were invited into).
    acting_for = request.headers.get(ORGANIZATION_HEADER) or None
    return authenticate_caller(services(request), bearer_token(request), acting_for)


Services = Annotated[ServiceContext, Depends(services)]
Caller = Annotated[Principal, Depends(principal)]
