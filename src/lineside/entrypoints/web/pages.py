"""What every server-rendered page shares: templates, the signed-in person, CSRF, headers.

A signed-in person carries a session cookie holding their sign-in token (HttpOnly,
SameSite=Lax, Secure when the public URL is https); every form also carries a CSRF token
that must match a second cookie (SameSite=Strict).
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from lineside.domain.errors import DomainError, PermissionDenied
from lineside.domain.models import Organization, Principal, Role, User
from lineside.entrypoints.api.dependencies import application, client_address, services
from lineside.services import people

SESSION_COOKIE = "lineside_session"
CSRF_COOKIE = "lineside_csrf"
TEMPLATES = Path(__file__).parent / "templates"
# No script anywhere on these pages, no resource from elsewhere, no framing.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; "
    "img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


@dataclass(frozen=True)
class Person:
    """The signed-in person of a request: who, as whom they act, and their session token."""

    user: User
    principal: Principal
    token: str
    memberships: list[tuple[Organization, Role]]  # every organization they belong to, with their role


def templates(request: Request) -> Jinja2Templates:
    state = request.app.state
    if not hasattr(state, "templates"):
        state.templates = Jinja2Templates(directory=TEMPLATES)
    found: Jinja2Templates = state.templates
    return found


def signed_in(request: Request) -> Person | None:
    token = request.cookies.get(SESSION_COOKIE, "")
    if not token:
        return None
    ctx = services(request)
    try:
        principal = people.authenticate_user_token(ctx, token)
        user, memberships = people.me(ctx, principal)
    except DomainError:
        return None
    return Person(user, principal, token, memberships)


def csrf_token(request: Request) -> str:
    return request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)


def check_csrf(request: Request, submitted: str) -> None:
    expected = request.cookies.get(CSRF_COOKIE, "")
    if not expected or not hmac.compare_digest(expected, submitted):
        raise PermissionDenied("The form expired; reload the page and try again.")


def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """Render ``template``; the header shows who is signed in, so a page whose route did not
    look the person up (a message) looks them up here."""
    if "user" not in context:
        person = signed_in(request)
        context["user"] = person.user if person else None
    csrf = csrf_token(request)
    response = templates(request).TemplateResponse(
        request, template, {"csrf": csrf, **context}, status_code=status
    )
    response.set_cookie(CSRF_COOKIE, csrf, httponly=True, samesite="strict", secure=secure(request))
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"  # URLs hold claim and transfer codes
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def message(request: Request, status: int, heading: str, text: str) -> HTMLResponse:
    return page(request, "message.html", status, heading=heading, message=text)


def secure(request: Request) -> bool:
    return application(request).settings.effective_public_url.startswith("https://")


def with_session(request: Request, to: str, token: str) -> Response:
    response = RedirectResponse(to, status_code=303)
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="lax", secure=secure(request))
    return response


def safe_next(target: str | None, default: str = "/account") -> str:
    """Where to go after signing in: a path of this site only, never another site."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return default


async def signed_in_from_form(
    request: Request, email: str, password: str, csrf: str, *, new_account: bool
) -> people.SignedIn:
    """A sign-in (or sign-up, then sign-in) form's submission, CSRF token checked: the
    session to set. DomainError when it is refused, for the page to show."""
    check_csrf(request, csrf)
    ctx, address = services(request), client_address(request)
    if new_account:
        await run_in_threadpool(partial(people.sign_up, client_address=address), ctx, email, password)
    return await run_in_threadpool(partial(people.sign_in, client_address=address), ctx, email, password)
