"""Request-scoped dependencies: the service context and the authenticated caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from lineside.bootstrap import Application
from lineside.domain.errors import Unauthenticated
from lineside.domain.models import Principal
from lineside.services.context import ServiceContext
from lineside.services.organizations import authenticate_api_key


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


def principal(request: Request) -> Principal:
    return authenticate_api_key(services(request), bearer_token(request))


Services = Annotated[ServiceContext, Depends(services)]
Caller = Annotated[Principal, Depends(principal)]
