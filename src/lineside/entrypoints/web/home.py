"""``GET /``: a small landing page, instead of a JSON 404 in a browser."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from lineside import __version__
from lineside.entrypoints.web.pages import page, signed_in

router = APIRouter(include_in_schema=False)


@router.get("/")
def home(request: Request) -> HTMLResponse:
    person = signed_in(request)
    return page(request, "home.html", version=__version__, user=person.user if person else None)
