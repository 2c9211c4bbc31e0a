"""Request-scoped dependencies: the service context and the authenticated caller."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request, Response, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from lineside.bootstrap import Application
from lineside.domain.errors import Unauthenticated
from lineside.domain.models import Principal
from lineside.entrypoints.logs import note_organization
from lineside.services.authentication import authenticate_caller, still_valid
from lineside.services.context import ServiceContext

T = TypeVar("T")


def application(request: Request) -> Application:
    app: Application = request.app.state.lineside
    return app


def services(request: Request) -> ServiceContext:
    return application(request).services


def client_address(request: Request) -> str:
    """Who is asking, for rate limits: the socket's peer, or what a trusted proxy says
    (LINESIDE_TRUSTED_PROXIES; see ``api.app``)."""
    return request.client.host if request.client else "unknown"


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
    caller = authenticate_caller(services(request), bearer_token(request), acting_for)
    note_organization(caller.organization.id)
    return caller


@dataclass(frozen=True)
class Credentials:
    """The caller's bearer credential, read but not yet checked (see ``as_caller``)."""

    token: str
    acting_for: str | None


async def bearer_credentials(
    request: Request,
    _declared: Annotated[HTTPAuthorizationCredentials | None, Security(api_key_scheme)],
) -> Credentials:
    # Parsed on the event loop: a missing or malformed header is refused before the body is
    # validated, as with ``Caller``, without a threadpool hop of its own.
    return Credentials(bearer_token(request), request.headers.get(ORGANIZATION_HEADER) or None)


async def as_caller(
    request: Request, credentials: Credentials, work: Callable[[ServiceContext, Principal], T]
) -> T:
    """Authenticate ``credentials`` and run ``work`` with the caller, in one threadpool hop.

    For the factory line's hot routes: ``Services`` and ``Caller`` are sync dependencies,
    a hop each, and a sync route adds two more (its body and the response check); together
    they cost more CPU than the route's queries (see bench/README.md, factory_line.py).
    """
    ctx = services(request)

    def authenticated_work() -> T:
        caller = authenticate_caller(ctx, credentials.token, credentials.acting_for)
        note_organization(caller.organization.id)
        return work(ctx, caller)

    return await run_in_threadpool(authenticated_work)


class CredentialsFirst(APIRoute):
    """A route class for routers with ``as_caller`` routes: bad credentials outrank a bad body.

    A ``Caller`` route refuses a bad key before its body is validated (dependencies run
    first); an ``as_caller`` route checks the key after. So when the body of a route taking
    ``CallerCredentials`` is invalid, the key is checked then, and its 401 answered in place
    of the 422: the same answers as before, paid for by invalid requests only. Other routes
    are left as they are.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()
        if not any(needed.call is bearer_credentials for needed in self.dependant.dependencies):
            return handle

        async def credentials_first(request: Request) -> Response:
            try:
                return await handle(request)
            except RequestValidationError:
                # The credentials dependency ran, so the header is well-formed.
                found = await bearer_credentials(request, None)
                await run_in_threadpool(authenticate_caller, services(request), found.token, found.acting_for)
                raise

        return credentials_first


Services = Annotated[ServiceContext, Depends(services)]
ClientAddress = Annotated[str, Depends(client_address)]
Caller = Annotated[Principal, Depends(principal)]
# For ``async def`` routes that authenticate with ``as_caller``: the same OpenAPI security.
CallerCredentials = Annotated[Credentials, Depends(bearer_credentials)]
