"""Products (device templates), their device groups, CA certificate and CRL."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from lineside.entrypoints.api.constraints import Cursor, Limit
from lineside.entrypoints.api.dependencies import Caller, Services
from lineside.entrypoints.api.schemas import (
    GroupIn,
    GroupOut,
    PageOut,
    ProductIn,
    ProductOut,
    ProductPatchIn,
)
from lineside.services import credentials, products

router = APIRouter(prefix="/api/v1/products", tags=["products"])
PEM = "application/x-pem-file"


@router.post("", status_code=status.HTTP_201_CREATED)
def create_product(body: ProductIn, ctx: Services, caller: Caller) -> ProductOut:
    """Create a product (device template) with its metadata fields."""
    product = products.create_product(
        ctx,
        caller,
        name=body.name,
        fields=body.fields(),
        enrollment_policy=body.enrollment_policy,
        requires_blessing=body.requires_blessing,
    )
    return ProductOut.of(product)


@router.get("")
def list_products(
    ctx: Services,
    caller: Caller,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> PageOut[ProductOut]:
    """The products of your organization and those below it, a page at a time."""
    page = products.list_products(ctx, caller, cursor=cursor, limit=limit)
    return PageOut(items=[ProductOut.of(p) for p in page.items], next_cursor=page.next_cursor)


@router.get("/{product_id}")
def get_product(product_id: str, ctx: Services, caller: Caller) -> ProductOut:
    """One product."""
    return ProductOut.of(products.get_product(ctx, caller, product_id))


@router.patch("/{product_id}")
def update_product(product_id: str, body: ProductPatchIn, ctx: Services, caller: Caller) -> ProductOut:
    """Rename the product, change its metadata fields (within what its devices allow) or
    whether its devices need blessing to activate."""
    product = products.update_product(
        ctx,
        caller,
        product_id,
        name=body.name,
        fields=body.fields(),
        requires_blessing=body.requires_blessing,
    )
    return ProductOut.of(product)


@router.post("/{product_id}/groups", status_code=status.HTTP_201_CREATED)
def create_group(product_id: str, body: GroupIn, ctx: Services, caller: Caller) -> GroupOut:
    """Create a device group (development, factory, pre-production or production)."""
    return GroupOut.of(products.create_group(ctx, caller, product_id, name=body.name, kind=body.kind))


@router.get("/{product_id}/groups")
def list_groups(product_id: str, ctx: Services, caller: Caller) -> list[GroupOut]:
    """The product's device groups."""
    return [GroupOut.of(group) for group in products.list_groups(ctx, caller, product_id)]


@router.get("/{product_id}/ca.pem", response_class=Response, responses={200: {"content": {PEM: {}}}})
def ca_certificate(product_id: str, ctx: Services, caller: Caller) -> Response:
    """The product's device CA certificate (made on first use)."""
    return Response(credentials.product_ca_pem(ctx, caller, product_id), media_type=PEM)


@router.get("/{product_id}/crl.pem", response_class=Response, responses={200: {"content": {PEM: {}}}})
def revocation_list(product_id: str, ctx: Services, caller: Caller) -> Response:
    """A freshly signed CRL of every revoked device certificate of the product."""
    return Response(credentials.product_crl_pem(ctx, caller, product_id), media_type=PEM)
