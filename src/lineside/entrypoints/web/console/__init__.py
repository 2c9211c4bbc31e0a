"""The manufacturer console: /console, for people of a manufacturer's organization.

Every page acts for one organization the person belongs to (its id is in the path), with
the person's role there; every action calls the same service as the API, which checks the
role's scope. Plain HTML forms and links; one small script of our own (static/console.js)
refreshes live parts and adds copy and select-all buttons, and every page works without it.
"""

from __future__ import annotations

from fastapi import APIRouter

from lineside.entrypoints.web.console import (
    assets,
    batches,
    device_actions,
    device_list,
    firmware_pages,
    fleet,
    hooks,
    line,
    organization,
    product_pages,
)

ROUTERS: list[APIRouter] = [
    assets.router,
    fleet.router,
    product_pages.router,
    device_list.router,
    device_actions.router,
    batches.router,
    line.router,
    firmware_pages.router,
    organization.router,
    hooks.router,
]
