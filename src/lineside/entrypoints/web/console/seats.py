"""Who is looking at the console, for which organization, with which role; how a
console page is shown."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from lineside.domain.errors import DomainError, InvalidInput
from lineside.domain.models import Organization, OrganizationKind, Principal, Role, Scope
from lineside.entrypoints.api.dependencies import services
from lineside.entrypoints.api.problems import status_of
from lineside.entrypoints.web.pages import Person, check_csrf, message, page, signed_in
from lineside.services import people, products
from lineside.services.context import ServiceContext

PAGE_SIZE = 50
PRODUCTS_SHOWN = 200  # in a form's product list
NOT_A_MAKER = (
    "The console is for people of a manufacturer's organization. Ask its owner to invite you "
    "(your own devices are under Your devices)."
)


@dataclass(frozen=True)
class Seat:
    """Who is looking, for which organization, with which role; the organizations they may switch to."""

    person: Person
    acting: Principal
    makers: list[tuple[Organization, Role]]

    @property
    def organization(self) -> Organization:
        return self.acting.organization

    def may(self, scope: str) -> bool:
        return self.acting.can(Scope(scope))


def makers_of(person: Person) -> list[tuple[Organization, Role]]:
    return [(org, role) for org, role in person.memberships if org.kind is OrganizationKind.MANUFACTURER]


def seat_for(request: Request, organization_id: str) -> Seat | Response:
    """The seat for ``organization_id``, or the page to show instead (sign in, not a member)."""
    person = signed_in(request)
    if person is None:
        return RedirectResponse(f"/signin?next={request.url.path}", status_code=303)
    makers = makers_of(person)
    if not any(org.id == organization_id for org, _role in makers):
        return message(request, 404, "Not found", "No organization of yours has this id.")
    acting = people.authenticate_user_token(services(request), person.token, organization_id)
    return Seat(person, acting, makers)


def show(request: Request, seat: Seat, template: str, status: int = 200, **context: Any) -> Response:
    return page(request, f"console/{template}", status, user=seat.person.user, seat=seat, **context)


async def acted(
    request: Request,
    organization_id: str,
    csrf: str,
    act: Callable[[ServiceContext, Principal], object],
    *,
    refused: str,
    then: str,
) -> Response:
    """A form's one action: the seat, the CSRF token, the service call; then on to ``then``,
    or a page headed ``refused`` saying why not."""
    seat = await run_in_threadpool(seat_for, request, organization_id)
    if not isinstance(seat, Seat):
        return seat
    try:
        check_csrf(request, csrf)
        await run_in_threadpool(act, services(request), seat.acting)
    except DomainError as error:
        return message(request, status_of(error), refused, error.detail)
    return RedirectResponse(then, status_code=303)


def product_choices(ctx: ServiceContext, seat: Seat) -> dict[str, Any]:
    """The organization's products for a form's list, and their names by id for a table."""
    made = products.list_products(ctx, seat.acting, cursor=None, limit=PRODUCTS_SHOWN).items
    return {"products": made, "names": {product.id: product.name for product in made}}


async def shown_after(
    request: Request,
    organization_id: str,
    csrf: str,
    make: Callable[[ServiceContext, Seat], object],
    template: str,
    context_of: Callable[[Request, Seat], dict[str, Any]],
    *,
    form: dict[str, Any] | None = None,
) -> Response:
    """A form that makes something to show once: the seat, the CSRF token, ``make``; then
    ``template`` with ``made`` (a secret it holds is on this page only), or with why it was
    refused and the form as it was filled in."""
    seat = await run_in_threadpool(seat_for, request, organization_id)
    if not isinstance(seat, Seat):
        return seat
    try:
        check_csrf(request, csrf)
        made = await run_in_threadpool(make, services(request), seat)
    except DomainError as error:
        context = await run_in_threadpool(context_of, request, seat)
        refused = {"error": error.detail, "form": form or {}}
        return show(request, seat, template, status_of(error), **{**context, **refused})
    context = await run_in_threadpool(context_of, request, seat)
    return show(request, seat, template, **{**context, "made": made})


Choice = TypeVar("Choice", bound=StrEnum)


def chosen(kind: type[Choice], text: str, what: str) -> Choice:
    """A form's choice among ``kind``'s values, or InvalidInput naming them."""
    try:
        return kind(text)
    except ValueError:
        allowed = ", ".join(f"'{choice.value}'" for choice in kind)
        raise InvalidInput(f"The {what} is one of: {allowed}.") from None
