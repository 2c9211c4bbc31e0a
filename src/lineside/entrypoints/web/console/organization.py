"""The console's organization page: API keys, people invited with a role (and their roles
changed), client sub-organizations (Blynk's flow: one per client, the client invited into
it), quota and usage.
A secret (a key, an invitation code) is on the page that made it, and never again."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from lineside.domain.errors import InvalidInput
from lineside.domain.models import Principal, Role, Scope
from lineside.entrypoints.api.dependencies import services
from lineside.entrypoints.web.console.seats import Seat, acted, seat_for, show, shown_after
from lineside.services import organizations, people, quotas
from lineside.services.context import ServiceContext

router = APIRouter(prefix="/console", include_in_schema=False)


def _context(request: Request, seat: Seat) -> dict[str, Any]:
    ctx = services(request)
    admin = seat.may("admin")
    return {
        "keys": organizations.list_api_keys(ctx, seat.acting) if admin else [],
        "members": people.members(ctx, seat.acting) if admin else [],
        "clients": [
            org
            for org in organizations.list_organizations(ctx, seat.acting)
            if org.id != seat.organization.id
        ],
        "usage": quotas.usage(ctx, seat.acting),
        "roles": list(Role),
        "scopes": list(Scope),
        "made": None,
    }


@router.get("/{organization_id}/organization", response_model=None)
async def organization_page(request: Request, organization_id: str) -> Response:
    seat = await run_in_threadpool(seat_for, request, organization_id)
    if not isinstance(seat, Seat):
        return seat
    return show(request, seat, "organization.html", **await run_in_threadpool(_context, request, seat))


async def _made(request: Request, organization_id: str, csrf: str, make: Any) -> Response:
    return await shown_after(request, organization_id, csrf, make, "organization.html", _context)


@router.post("/{organization_id}/organization/api-keys", response_model=None)
async def create_key(
    request: Request,
    organization_id: str,
    name: str = Form(""),
    scope: str = Form("read"),
    csrf: str = Form(""),
) -> Response:
    def make(ctx: Any, seat: Seat) -> dict[str, str]:
        if scope not in {s.value for s in Scope}:
            raise InvalidInput("The scope is read, factory or admin.")
        created = organizations.create_api_key(ctx, seat.acting, name=name, scopes=frozenset({Scope(scope)}))
        return {"what": f"API key {created.key.name} ({scope})", "secret": created.secret}

    return await _made(request, organization_id, csrf, make)


@router.post("/{organization_id}/organization/api-keys/{key_id}/revoke", response_model=None)
async def revoke_key(request: Request, organization_id: str, key_id: str, csrf: str = Form("")) -> Response:
    return await acted(
        request,
        organization_id,
        csrf,
        lambda ctx, principal: organizations.revoke_api_key(ctx, principal, key_id),
        refused="Not revoked",
        then=f"/console/{organization_id}/organization?revoked=1",
    )


@router.post("/{organization_id}/organization/invitations", response_model=None)
async def invite(
    request: Request,
    organization_id: str,
    email: str = Form(""),
    role: str = Form("viewer"),
    into: str = Form(""),
    csrf: str = Form(""),
) -> Response:
    """Invite a person into this organization or one of its clients, with a role."""

    def make(ctx: Any, seat: Seat) -> dict[str, str]:
        if role not in {r.value for r in Role}:
            raise InvalidInput("The role is owner, admin, operator or viewer.")
        target = into or seat.organization.id
        created = people.invite(ctx, seat.acting, target, email, Role(role))
        return {"what": f"Invitation for {created.email} as {role}", "secret": created.code}

    return await _made(request, organization_id, csrf, make)


@router.post("/{organization_id}/organization/members/{user_id}/role", response_model=None)
async def change_role(
    request: Request, organization_id: str, user_id: str, role: str = Form(""), csrf: str = Form("")
) -> Response:
    """Give a member of this organization another role."""

    def act(ctx: ServiceContext, principal: Principal) -> object:
        if role not in {r.value for r in Role}:
            raise InvalidInput("The role is owner, admin, operator or viewer.")
        return people.change_role(ctx, principal, user_id, Role(role))

    return await acted(
        request,
        organization_id,
        csrf,
        act,
        refused="Role not changed",
        then=f"/console/{organization_id}/organization?role_changed=1",
    )


@router.post("/{organization_id}/organization/clients", response_model=None)
async def create_client(
    request: Request, organization_id: str, name: str = Form(""), csrf: str = Form("")
) -> Response:
    def make(ctx: Any, seat: Seat) -> dict[str, str]:
        created = organizations.create_organization(ctx, name, parent=seat.acting)
        return {
            "what": f"Client organization {created.organization.name}",
            "secret": created.admin_key.secret,
        }

    return await _made(request, organization_id, csrf, make)
