"""The owner's home: sign in or up without a QR code, the devices in the account with their
online indicator and last seen, one device's page, giving a device up (after a confirmation),
handing it to another person by a link, changing the password, signing out.

Every action calls the same services as the API; these routes only read forms, check the
CSRF token and choose the page to show.
"""

from __future__ import annotations

from functools import partial
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from lineside.domain.errors import DomainError
from lineside.domain.models import OrganizationKind
from lineside.entrypoints.api.dependencies import client_address, services
from lineside.entrypoints.api.problems import status_of
from lineside.entrypoints.web.pages import (
    SESSION_COOKIE,
    Person,
    check_csrf,
    message,
    page,
    safe_next,
    signed_in,
    signed_in_from_form,
    with_session,
)
from lineside.services import claims, owners, people, transfers

router = APIRouter(include_in_schema=False)


def _sign_in_first(request: Request) -> Response:
    return RedirectResponse(f"/signin?next={request.url.path}", status_code=303)


# -- signing in and up ----------------------------------------------------------------------


def _form_unless_signed_in(request: Request, template: str, next: str | None) -> Response:
    if signed_in(request) is not None:  # already in: straight on
        return RedirectResponse(safe_next(next), status_code=303)
    return page(request, template, next=safe_next(next), error=None)


@router.get("/signin", response_model=None)
def sign_in_page(request: Request, next: str | None = None) -> Response:
    return _form_unless_signed_in(request, "signin.html", next)


@router.post("/signin", response_model=None)
async def sign_in(
    request: Request,
    email: str = Form(""),
    password: str = Form(""),
    csrf: str = Form(""),
    next: str = Form(""),
) -> Response:
    return await _signed_in_or_again(request, "signin.html", email, password, csrf, next, new_account=False)


@router.get("/signup", response_model=None)
def sign_up_page(request: Request, next: str | None = None) -> Response:
    return _form_unless_signed_in(request, "signup.html", next)


@router.post("/signup", response_model=None)
async def sign_up(
    request: Request,
    email: str = Form(""),
    password: str = Form(""),
    csrf: str = Form(""),
    next: str = Form(""),
) -> Response:
    return await _signed_in_or_again(request, "signup.html", email, password, csrf, next, new_account=True)


async def _signed_in_or_again(
    request: Request, template: str, email: str, password: str, csrf: str, next: str, *, new_account: bool
) -> Response:
    """On to ``next`` with a session, or the same form again with what went wrong."""
    try:
        done = await signed_in_from_form(request, email, password, csrf, new_account=new_account)
    except DomainError as error:
        return page(
            request, template, status_of(error), next=safe_next(next), error=error.detail, email=email
        )
    return with_session(request, safe_next(next), done.token)


@router.post("/signout", response_model=None)
def sign_out(request: Request, csrf: str = Form(""), next: str = Form("")) -> Response:
    response = RedirectResponse(safe_next(next, default="/signin"), status_code=303)
    person = signed_in(request)
    try:
        check_csrf(request, csrf)
    except DomainError:
        return response
    if person is not None:
        people.sign_out(services(request), person.token)
    response.delete_cookie(SESSION_COOKIE)
    return response


# -- the devices ----------------------------------------------------------------------------


@router.get("/account", response_model=None)
def account(request: Request, claimed: str | None = None, done: str | None = None) -> Response:
    person = signed_in(request)
    if person is None:
        return _sign_in_first(request)
    owned = owners.owned_devices(services(request), person.principal)
    makers = [org for org, _role in person.memberships if org.kind is OrganizationKind.MANUFACTURER]
    return page(
        request, "account.html", user=person.user, owned=owned, claimed=claimed, done=done, makers=makers
    )


@router.get("/account/devices/{device_id}", response_model=None)
def device_page(request: Request, device_id: str) -> Response:
    person = signed_in(request)
    if person is None:
        return _sign_in_first(request)
    return _device_page(request, person, device_id)


def _device_page(request: Request, person: Person, device_id: str, **extra: Any) -> Response:
    try:
        owned = owners.owned_device(services(request), person.principal, device_id)
    except DomainError as error:
        return message(request, status_of(error), "Not one of your devices", error.detail)
    return page(request, "device.html", user=person.user, owned=owned, **extra)


@router.get("/account/devices/{device_id}/unclaim", response_model=None)
def confirm_unclaim(request: Request, device_id: str) -> Response:
    person = signed_in(request)
    if person is None:
        return _sign_in_first(request)
    return _device_page(request, person, device_id, confirming="unclaim")


@router.post("/account/devices/{device_id}/unclaim", response_model=None)
def unclaim(request: Request, device_id: str, csrf: str = Form("")) -> Response:
    person = signed_in(request)
    if person is None:
        return _sign_in_first(request)
    try:
        check_csrf(request, csrf)
        device = claims.unclaim_device(services(request), person.principal, device_id)
    except DomainError as error:
        return message(request, status_of(error), "Could not remove the device", error.detail)
    return RedirectResponse(f"/account?done=removed:{device.serial_number}", status_code=303)


@router.post("/account/devices/{device_id}/transfer", response_model=None)
def offer_transfer(request: Request, device_id: str, csrf: str = Form("")) -> Response:
    person = signed_in(request)
    if person is None:
        return _sign_in_first(request)
    try:
        check_csrf(request, csrf)
        offered = transfers.offer_transfer(services(request), person.principal, device_id)
    except DomainError as error:
        return message(request, status_of(error), "Could not offer the device", error.detail)
    return _device_page(request, person, device_id, offered=offered)


@router.post("/account/devices/{device_id}/transfer/cancel", response_model=None)
def cancel_transfer(request: Request, device_id: str, csrf: str = Form("")) -> Response:
    person = signed_in(request)
    if person is None:
        return _sign_in_first(request)
    try:
        check_csrf(request, csrf)
        transfers.cancel_transfers(services(request), person.principal, device_id)
    except DomainError as error:
        return message(request, status_of(error), "Could not cancel the offer", error.detail)
    return RedirectResponse(f"/account/devices/{device_id}", status_code=303)


# -- receiving a device -----------------------------------------------------------------------


@router.get("/transfer/{code}")
def transfer_page(request: Request, code: str) -> HTMLResponse:
    person = signed_in(request)
    try:
        view = transfers.describe_transfer(
            services(request),
            code,
            client_address=client_address(request),
            actor=person.principal.actor if person else None,
        )
    except DomainError as error:
        return message(request, status_of(error), "This link does not work", error.detail)
    user = person.user if person else None
    return page(request, "transfer.html", view=view, code=code, user=user, next=f"/transfer/{code}")


@router.get("/transfer", response_model=None)
def transfer_by_code(code: str = "") -> Response:
    """The account page's "paste the transfer code" form: a typed code opens the same page
    as the link."""
    code = code.strip()
    if not code:
        return RedirectResponse("/account", status_code=303)
    return RedirectResponse(f"/transfer/{quote(code, safe='')}", status_code=303)


@router.post("/transfer/{code}", response_model=None)
def accept_transfer(request: Request, code: str, csrf: str = Form("")) -> Response:
    person = signed_in(request)
    if person is None:
        return _sign_in_first(request)
    try:
        check_csrf(request, csrf)
        device = transfers.accept_transfer(
            services(request), person.principal, code, client_address=client_address(request)
        )
    except DomainError as error:
        return message(request, status_of(error), "Could not take the device", error.detail)
    return RedirectResponse(f"/account?done=received:{device.serial_number}", status_code=303)


# -- the password -------------------------------------------------------------------------------


@router.get("/account/password", response_model=None)
def password_page(request: Request) -> Response:
    person = signed_in(request)
    if person is None:
        return _sign_in_first(request)
    return page(request, "password.html", user=person.user, error=None)


@router.post("/account/password", response_model=None)
async def change_password(
    request: Request, current: str = Form(""), new: str = Form(""), csrf: str = Form("")
) -> Response:
    person = signed_in(request)
    if person is None:
        return _sign_in_first(request)
    try:
        check_csrf(request, csrf)
        change = partial(people.change_password, client_address=client_address(request))
        await run_in_threadpool(change, services(request), person.principal, person.token, current, new)
    except DomainError as error:
        return page(request, "password.html", status_of(error), user=person.user, error=error.detail)
    return RedirectResponse("/account?done=password", status_code=303)
