"""The claim page a QR code opens on a phone, sign-in and sign-up around it, and the
owner's device list.

A signed-in person carries a session cookie holding their sign-in token (HttpOnly,
SameSite=Lax); every form also carries a CSRF token that must match a second cookie.
"""

from __future__ import annotations

import hmac
import secrets
from functools import partial
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from lineside.domain.errors import DomainError, Gone, NotFound, PermissionDenied, TooManyAttempts
from lineside.domain.models import Principal, User
from lineside.entrypoints.api.dependencies import application, client_address, services
from lineside.entrypoints.api.problems import status_of
from lineside.services import claims, people
from lineside.services.claims import ClaimStatus

router = APIRouter(include_in_schema=False)
SESSION_COOKIE = "lineside_session"
CSRF_COOKIE = "lineside_csrf"
TEMPLATES = Path(__file__).parent / "templates"


def _templates(request: Request) -> Jinja2Templates:
    state = request.app.state
    if not hasattr(state, "templates"):
        state.templates = Jinja2Templates(directory=TEMPLATES)
    templates: Jinja2Templates = state.templates
    return templates


def _signed_in(request: Request) -> tuple[User, Principal] | None:
    token = request.cookies.get(SESSION_COOKIE, "")
    if not token:
        return None
    ctx = services(request)
    try:
        principal = people.authenticate_user_token(ctx, token)
        user, _orgs = people.me(ctx, principal)
    except DomainError:
        return None
    return user, principal


def _csrf(request: Request) -> str:
    return request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)


def _check_csrf(request: Request, submitted: str) -> None:
    expected = request.cookies.get(CSRF_COOKIE, "")
    if not expected or not hmac.compare_digest(expected, submitted):
        raise PermissionDenied("The form expired; reload the page and try again.")


def _page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    csrf = _csrf(request)
    response = _templates(request).TemplateResponse(
        request, template, {"csrf": csrf, **context}, status_code=status
    )
    response.set_cookie(CSRF_COOKIE, csrf, httponly=True, samesite="strict", secure=_secure(request))
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"  # the URL holds the claim code
    return response


def _secure(request: Request) -> bool:
    return application(request).settings.effective_public_url.startswith("https://")


_STATUS_PAGES = {
    ClaimStatus.UNKNOWN: (404, "Unknown code", "This QR code does not belong to any device we know."),
    ClaimStatus.DELETED: (410, "Device deleted", "This device was deleted by its manufacturer."),
}


def _claim_page(request: Request, code: str, error: str | None = None, status: int = 200) -> HTMLResponse:
    signed_in = _signed_in(request)
    actor = signed_in[1].actor if signed_in else None
    try:
        view = claims.describe_claim(
            services(request), code, client_address=client_address(request), actor=actor
        )
    except TooManyAttempts as limited:
        return _too_many_lookups(request, code, signed_in is not None, limited)
    if view.status in _STATUS_PAGES:
        page_status, heading, message = _STATUS_PAGES[view.status]
        return _page(request, "message.html", page_status, heading=heading, message=message)
    mine = bool(signed_in and view.owner_organization_id == signed_in[1].organization.id)
    user = signed_in[0] if signed_in else None
    return _page(request, "claim.html", status, view=view, code=code, user=user, mine=mine, error=error)


def _too_many_lookups(request: Request, code: str, signed_in: bool, error: TooManyAttempts) -> HTMLResponse:
    # Signed out, the person is asked to sign in: a signed-in owner's first look of the
    # window still gets through a network whose lookups a stranger has spent.
    response = _page(
        request,
        "limited.html",
        429,
        code=code,
        signed_in=signed_in,
        message=error.detail,
    )
    response.headers["Retry-After"] = str(error.retry_after_seconds)
    return response


@router.get("/claim/{code}")
def claim_page(request: Request, code: str) -> HTMLResponse:
    return _claim_page(request, code)


@router.post("/claim/{code}", response_model=None)
def claim(request: Request, code: str, csrf: str = Form("")) -> Response:
    signed_in = _signed_in(request)
    if signed_in is None:
        return _claim_page(request, code, "Sign in first.", 401)
    try:
        _check_csrf(request, csrf)
        device = claims.claim_device(
            services(request), signed_in[1], code, client_address=client_address(request)
        )
    except TooManyAttempts as limited:
        return _too_many_lookups(request, code, True, limited)
    except (NotFound, Gone) as error:
        # Answered without another lookup: the claim's own was charged already.
        heading = "Unknown code" if isinstance(error, NotFound) else "Device deleted"
        return _page(request, "message.html", status_of(error), heading=heading, message=error.detail)
    except DomainError as error:
        return _claim_page(request, code, error.detail, status_of(error))
    return RedirectResponse(f"/account?claimed={device.serial_number}", status_code=303)


def _with_session(request: Request, code: str, token: str) -> Response:
    response = RedirectResponse(f"/claim/{code}", status_code=303)
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="lax", secure=_secure(request))
    return response


@router.post("/claim/{code}/signin", response_model=None)
async def sign_in(
    request: Request, code: str, email: str = Form(""), password: str = Form(""), csrf: str = Form("")
) -> Response:
    try:
        _check_csrf(request, csrf)
        signed_in = await run_in_threadpool(
            partial(people.sign_in, client_address=client_address(request)),
            services(request),
            email,
            password,
        )
    except DomainError as error:
        return await run_in_threadpool(_claim_page, request, code, error.detail, status_of(error))
    return _with_session(request, code, signed_in.token)


@router.post("/claim/{code}/signup", response_model=None)
async def sign_up(
    request: Request, code: str, email: str = Form(""), password: str = Form(""), csrf: str = Form("")
) -> Response:
    ctx = services(request)
    try:
        _check_csrf(request, csrf)
        address = client_address(request)
        await run_in_threadpool(partial(people.sign_up, client_address=address), ctx, email, password)
        signed_in = await run_in_threadpool(
            partial(people.sign_in, client_address=address), ctx, email, password
        )
    except DomainError as error:
        return await run_in_threadpool(_claim_page, request, code, error.detail, status_of(error))
    return _with_session(request, code, signed_in.token)


@router.get("/account", response_model=None)
def account(request: Request, claimed: str | None = None) -> Response:
    signed_in = _signed_in(request)
    if signed_in is None:
        return _page(
            request,
            "message.html",
            401,
            heading="Not signed in",
            message="Scan a device's QR code to sign in.",
        )
    owned = claims.owned_devices(services(request), signed_in[1])
    devices = [device for device, _name in owned]
    products = {device.product_id: name for device, name in owned}
    return _page(
        request, "account.html", user=signed_in[0], devices=devices, products=products, claimed=claimed
    )


@router.post("/signout", response_model=None)
def sign_out(request: Request, csrf: str = Form("")) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    response = RedirectResponse("/account", status_code=303)
    if token and hmac.compare_digest(request.cookies.get(CSRF_COOKIE, ""), csrf):
        people.sign_out(services(request), token)
        response.delete_cookie(SESSION_COOKIE)
    return response
