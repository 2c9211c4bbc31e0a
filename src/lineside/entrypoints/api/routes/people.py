"""People: sign-up, sign-in tokens, invitations into organizations, members' roles."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel, Field, StrictStr

from lineside.domain.models import Role
from lineside.entrypoints.api.constraints import MAX_PASSWORD_LENGTH, Email, NewPassword
from lineside.entrypoints.api.dependencies import Caller, ClientAddress, Services, bearer_token
from lineside.entrypoints.api.openapi import problem_responses
from lineside.entrypoints.api.schemas import OrganizationOut
from lineside.entrypoints.api.schemas import Request as RequestBody
from lineside.services import people

router = APIRouter(prefix="/api/v1", tags=["people"])


class Credentials(RequestBody):
    email: Email
    password: StrictStr = Field(max_length=MAX_PASSWORD_LENGTH)


class NewAccount(RequestBody):
    email: Email
    password: NewPassword


class UserOut(BaseModel):
    id: str
    email: str
    organization_id: str = Field(description="The personal organization claimed devices move into.")
    created_at: datetime


class TokenOut(BaseModel):
    access_token: str = Field(description="lsu_...; send as 'Authorization: Bearer'. Shown once.")
    token_type: str = "bearer"
    expires_in: int


class MembershipOut(OrganizationOut):
    role: Role = Field(description="What you may do there: owner, admin, operator or viewer.")


class MeOut(UserOut):
    organizations: list[MembershipOut]


class PasswordChange(RequestBody):
    current_password: StrictStr = Field(max_length=MAX_PASSWORD_LENGTH)
    new_password: NewPassword


class PasswordChanged(BaseModel):
    other_sessions_ended: int = Field(description="Sign-ins elsewhere that stopped working.")


class InvitationIn(RequestBody):
    email: Email
    role: Role = Field(
        default=Role.ADMIN,
        description="What the person may do there: owner (only an owner invites one), admin,"
        " operator (the factory line, batches) or viewer (reads only).",
    )


class InvitationOut(BaseModel):
    id: str
    organization_id: str
    email: str
    code: str = Field(description="lsi_...; give it to the person invited. Shown once.")
    role: Role


class RoleIn(RequestBody):
    role: Role = Field(
        description="owner (only an owner makes or unmakes one; the last owner stays one), admin,"
        " operator or viewer."
    )


class MemberOut(BaseModel):
    user_id: str
    email: str
    organization_id: str
    role: Role
    previous_role: Role = Field(description="The role before this change (the same if it did not change).")


class AcceptIn(RequestBody):
    code: StrictStr = Field(max_length=200)


@router.post("/users", status_code=status.HTTP_201_CREATED, responses=problem_responses(409, 429))
def sign_up(body: NewAccount, ctx: Services, address: ClientAddress) -> UserOut:
    """Create an account (and its personal organization). No authentication needed."""
    user = people.sign_up(ctx, body.email, body.password, client_address=address)
    return UserOut(
        id=user.id,
        email=user.email,
        organization_id=user.personal_organization_id,
        created_at=user.created_at,
    )


@router.post("/auth/token", responses=problem_responses(401, 429))
def sign_in(body: Credentials, ctx: Services, address: ClientAddress) -> TokenOut:
    """Exchange email and password for a bearer token."""
    signed_in = people.sign_in(ctx, body.email, body.password, client_address=address)
    return TokenOut(access_token=signed_in.token, expires_in=signed_in.expires_in_seconds)


@router.delete("/auth/token", status_code=status.HTTP_204_NO_CONTENT)
def sign_out(request: Request, ctx: Services, _caller: Caller) -> Response:
    """Sign out: the bearer token stops working."""
    people.sign_out(ctx, bearer_token(request))
    return Response(status_code=204)


@router.get("/me")
def who_am_i(ctx: Services, caller: Caller) -> MeOut:
    """The signed-in person and the organizations they belong to."""
    user, organizations = people.me(ctx, caller)
    return MeOut(
        id=user.id,
        email=user.email,
        organization_id=user.personal_organization_id,
        created_at=user.created_at,
        organizations=[
            MembershipOut(**OrganizationOut.of(org).model_dump(), role=role) for org, role in organizations
        ],
    )


@router.post("/me/password", responses=problem_responses(401, 429))
def change_password(
    request: Request, body: PasswordChange, ctx: Services, caller: Caller, address: ClientAddress
) -> PasswordChanged:
    """Change your password; every other sign-in ends, this token goes on working."""
    ended = people.change_password(
        ctx, caller, bearer_token(request), body.current_password, body.new_password, client_address=address
    )
    return PasswordChanged(other_sessions_ended=ended)


@router.post("/organizations/{organization_id}/invitations", status_code=status.HTTP_201_CREATED)
def invite(organization_id: str, body: InvitationIn, ctx: Services, caller: Caller) -> InvitationOut:
    """Invite a person into one of your (sub-)organizations, e.g. a client's."""
    created = people.invite(ctx, caller, organization_id, body.email, body.role)
    return InvitationOut(
        id=created.id,
        organization_id=created.organization_id,
        email=created.email,
        code=created.code,
        role=created.role,
    )


@router.put("/organizations/{organization_id}/members/{user_id}")
def change_role(organization_id: str, user_id: str, body: RoleIn, ctx: Services, caller: Caller) -> MemberOut:
    """Give a member of your organization (or of one below it) another role; records
    `membership.role_changed`. Someone not a member there answers 404; demoting the last owner, 409."""
    changed = people.change_role(ctx, caller, user_id, body.role, organization_id=organization_id)
    return MemberOut(
        user_id=changed.user.id,
        email=changed.user.email,
        organization_id=changed.organization_id,
        role=changed.role,
        previous_role=changed.previous,
    )


@router.post("/invitations/accept")
def accept(body: AcceptIn, ctx: Services, caller: Caller) -> OrganizationOut:
    """As a signed-in person: join the organization the invitation is for."""
    return OrganizationOut.of(people.accept_invitation(ctx, caller, body.code))
