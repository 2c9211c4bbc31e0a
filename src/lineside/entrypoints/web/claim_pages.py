"""The claim page a QR code opens on a phone, with sign-in and sign-up around it."""

from __future__ import annotations

from fastapi import APIRouter, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from lineside.domain.errors import DomainError, Gone, NotFound, TooManyAttempts
from lineside.entrypoints.api.dependencies import client_address, services
from lineside.entrypoints.api.problems import status_of
from lineside.entrypoints.web.pages import (
    check_csrf,
    message,
    page,
    signed_in,
    signed_in_from_form,
    with_session,
)
from lineside.services import claims
from lineside.services.claims import ClaimStatus

router = APIRouter(include_in_schema=False)

_STATUS_PAGES = {
    ClaimStatus.UNKNOWN: (404, "Unknown code", "This QR code does not belong to any device we know."),
    ClaimStatus.DELETED: (410, "Device deleted", "This device was deleted by its manufacturer."),
}


def claim_page_of(request: Request, code: str, error: str | None = None, status: int = 200) -> HTMLResponse:
    person = signed_in(request)
    actor = person.principal.actor if person else None
    try:
        view = claims.describe_claim(
            services(request), code, client_address=client_address(request), actor=actor
        )
    except TooManyAttempts as limited:
        return too_many_lookups(request, code, person is not None, limited)
    if view.status in _STATUS_PAGES:
        page_status, heading, text = _STATUS_PAGES[view.status]
        return message(request, page_status, heading, text)
    mine = bool(person and view.owner_organization_id == person.principal.organization.id)
    user = person.user if person else None
    return page(request, "claim.html", status, view=view, code=code, user=user, mine=mine, error=error)


def too_many_lookups(request: Request, code: str, is_signed_in: bool, error: TooManyAttempts) -> HTMLResponse:
    # Signed out, the person is asked to sign in: a signed-in owner's first look of the
    # window still gets through a network whose lookups a stranger has spent.
    response = page(request, "limited.html", 429, code=code, signed_in=is_signed_in, message=error.detail)
    response.headers["Retry-After"] = str(error.retry_after_seconds)
    return response


@router.get("/claim/{code}")
def claim_page(request: Request, code: str) -> HTMLResponse:
    return claim_page_of(request, code)


@router.post("/claim/{code}", response_model=None)
def claim(request: Request, code: str, csrf: str = Form("")) -> Response:
    person = signed_in(request)
    if person is None:
        return claim_page_of(request, code, "Sign in first.", 401)
    try:
        check_csrf(request, csrf)
        device = claims.claim_device(
            services(request), person.principal, code, client_address=client_address(request)
        )
    except TooManyAttempts as limited:
        return too_many_lookups(request, code, True, limited)
    except (NotFound, Gone) as error:
        # Answered without another lookup: the claim's own was charged already.
        heading = "Unknown code" if isinstance(error, NotFound) else "Device deleted"
        return message(request, status_of(error), heading, error.detail)
    except DomainError as error:
        return claim_page_of(request, code, error.detail, status_of(error))
    return RedirectResponse(f"/account?claimed={device.serial_number}", status_code=303)


@router.post("/claim/{code}/signin", response_model=None)
async def sign_in(
    request: Request, code: str, email: str = Form(""), password: str = Form(""), csrf: str = Form("")
) -> Response:
    return await _signed_in_back_to_claim(request, code, email, password, csrf, new_account=False)


@router.post("/claim/{code}/signup", response_model=None)
async def sign_up(
    request: Request, code: str, email: str = Form(""), password: str = Form(""), csrf: str = Form("")
) -> Response:
    return await _signed_in_back_to_claim(request, code, email, password, csrf, new_account=True)


async def _signed_in_back_to_claim(
    request: Request, code: str, email: str, password: str, csrf: str, *, new_account: bool
) -> Response:
    try:
        person = await signed_in_from_form(request, email, password, csrf, new_account=new_account)
    except DomainError as error:
        return await run_in_threadpool(claim_page_of, request, code, error.detail, status_of(error))
    return with_session(request, f"/claim/{code}", person.token)
