"""Production enrollment tokens: Electric Imp's ``POST /v5/enroll``, its native twin, and the
claim a fixture or app polls for once it has handed a token to a device."""

from __future__ import annotations

import base64
import binascii
import json

from fastapi import APIRouter, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from lineside.domain.errors import Unauthenticated
from lineside.domain.models import Principal
from lineside.entrypoints.api.bodies import media_type
from lineside.entrypoints.api.dependencies import Caller, Services, services
from lineside.entrypoints.api.factory_schemas import (
    ElectricImpTokenOut,
    ProductionTokenIn,
    ProductionTokenOut,
    TokenClaimOut,
)
from lineside.entrypoints.api.problems import problem
from lineside.services import activation
from lineside.services.authentication import authenticate_caller
from lineside.services.context import ServiceContext

router = APIRouter(tags=["production enrollment"])

PRODUCTION_TOKEN_TYPE = "production_token"
BASIC_CHALLENGE = 'Basic realm="Lineside", charset="UTF-8"'

_V5_ENROLL = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {"type": {"type": "string", "enum": [PRODUCTION_TOKEN_TYPE]}},
                    "required": ["type"],
                }
            }
        },
    },
}


def _basic_api_key(request: Request) -> str:
    """The API key of ``Authorization: Basic base64(key)`` (or of ``key:``, an empty password)."""
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        raise Unauthenticated("Send 'Authorization: Basic <base64 of your API key>'.")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise Unauthenticated("The Basic credentials are not base64 of an API key.") from None
    key, _, password = decoded.partition(":")
    if password or not key:
        raise Unauthenticated("Send the API key as the Basic user name, with an empty password.")
    return key


def _authenticated(ctx: ServiceContext, request: Request) -> Principal:
    return authenticate_caller(ctx, _basic_api_key(request))


def _body_problem(content_type: str, raw: bytes) -> str | None:
    """Why the body is not ``{"type": "production_token"}``, or None."""
    if content_type != "application/json":
        return "Send 'Content-Type: application/json'."
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):
        return "The request body is not valid JSON."
    if not isinstance(document, dict) or document.get("type") != PRODUCTION_TOKEN_TYPE or len(document) != 1:
        return f'The body must be {{"type": "{PRODUCTION_TOKEN_TYPE}"}}.'
    return None


@router.post(
    "/v5/enroll",
    status_code=status.HTTP_201_CREATED,
    response_model=ElectricImpTokenOut,
    openapi_extra=_V5_ENROLL,
    responses={400: {"description": "Not a production token request."}, 401: {"description": "Bad key."}},
)
async def electric_imp_enroll(request: Request) -> JSONResponse:
    """Electric Imp's production token request, for agents and BlinkUp-style apps as they are:
    ``Authorization: Basic <base64 of an API key with the factory scope>`` and the body
    ``{"type": "production_token"}``. Answers a plan id and a token id, both hex."""
    ctx = services(request)
    try:
        caller = await run_in_threadpool(_authenticated, ctx, request)
    except Unauthenticated as error:
        refused = problem(status.HTTP_401_UNAUTHORIZED, error.title, error.detail)
        refused.headers["WWW-Authenticate"] = BASIC_CHALLENGE
        return refused
    reason = _body_problem(media_type(request), await request.body())
    if reason is not None:
        return problem(status.HTTP_400_BAD_REQUEST, "Bad request", reason)
    issued = await run_in_threadpool(activation.issue_production_token, ctx, caller)
    body = ElectricImpTokenOut(plan_id=issued.token.plan_id, token_id=issued.token_id)
    return JSONResponse(body.model_dump(), status_code=status.HTTP_201_CREATED)


@router.post("/api/v1/enrollment-tokens", status_code=status.HTTP_201_CREATED)
def create_production_token(
    ctx: Services, caller: Caller, body: ProductionTokenIn | None = None
) -> ProductionTokenOut:
    """A production enrollment token (plan id + token id): short-lived and single-use."""
    product_id = body.product_id if body is not None else None
    issued = activation.issue_production_token(ctx, caller, product_id=product_id)
    return ProductionTokenOut(
        plan_id=issued.token.plan_id,
        token_id=issued.token_id,
        expires_at=issued.token.expires_at,
        product_id=issued.token.product_id,
    )


@router.get("/api/v1/enrollment-tokens/{token_id}")
def token_claim(token_id: str, ctx: Services, caller: Caller) -> TokenClaimOut:
    """Poll after handing the token to a device: ``claimed`` names the device that activated."""
    claim = activation.claim_of_token(ctx, caller, token_id)
    device_url = f"{ctx.config.public_url}/api/v1/devices/{claim.device_id}" if claim.device_id else None
    return TokenClaimOut(
        status=claim.status, device_id=claim.device_id, device_url=device_url, expires_at=claim.expires_at
    )
