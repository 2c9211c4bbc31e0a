"""Sub-organizations and API keys."""

from __future__ import annotations

from fastapi import APIRouter, status

from lineside.entrypoints.api.dependencies import Caller, Services
from lineside.entrypoints.api.schemas import (
    ApiKeyIn,
    ApiKeyOut,
    CreatedApiKeyOut,
    CreatedOrganizationOut,
    OrganizationIn,
    OrganizationOut,
)
from lineside.services import organizations

router = APIRouter(prefix="/api/v1", tags=["organizations"])


@router.post("/organizations", status_code=status.HTTP_201_CREATED)
def create_sub_organization(body: OrganizationIn, ctx: Services, caller: Caller) -> CreatedOrganizationOut:
    """A sub-organization of yours (for a client or a factory), with its first admin key."""
    created = organizations.create_organization(ctx, body.name, parent=caller)
    return CreatedOrganizationOut(
        **OrganizationOut.of(created.organization).model_dump(), api_key=created.admin_key.secret
    )


@router.get("/organizations")
def list_organizations(ctx: Services, caller: Caller) -> list[OrganizationOut]:
    """Your organization and every organization below it."""
    return [OrganizationOut.of(org) for org in organizations.list_organizations(ctx, caller)]


@router.get("/organizations/{organization_id}")
def get_organization(organization_id: str, ctx: Services, caller: Caller) -> OrganizationOut:
    """One organization: yours or one below it."""
    return OrganizationOut.of(organizations.get_organization(ctx, caller, organization_id))


@router.post("/api-keys", status_code=status.HTTP_201_CREATED)
def create_api_key(body: ApiKeyIn, ctx: Services, caller: Caller) -> CreatedApiKeyOut:
    """Create an API key with the given scopes; the key is shown once."""
    created = organizations.create_api_key(
        ctx,
        caller,
        name=body.name,
        scopes=frozenset(body.scopes),
        organization_id=body.organization_id,
    )
    return CreatedApiKeyOut(**ApiKeyOut.of(created.key).model_dump(), key=created.secret)


@router.get("/api-keys")
def list_api_keys(ctx: Services, caller: Caller) -> list[ApiKeyOut]:
    """The organization's API keys (no secrets)."""
    return [ApiKeyOut.of(key) for key in organizations.list_api_keys(ctx, caller)]


@router.delete("/api-keys/{key_id}")
def revoke_api_key(key_id: str, ctx: Services, caller: Caller) -> ApiKeyOut:
    """Revoke a key at once. Revoking twice is harmless."""
    return ApiKeyOut.of(organizations.revoke_api_key(ctx, caller, key_id))
