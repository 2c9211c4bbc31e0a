"""The manufacturer console: /console, for people of a manufacturer's organization.

Every page acts for one organization the person belongs to (its id is in the path), with
the person's role there; every action calls the same service as the API, which checks the
role's scope. Plain HTML forms and links: no script, like the owner's pages.
"""

from __future__ import annotations

from fastapi import APIRouter

from lineside.entrypoints.web.console import batches, device_actions, fleet, hooks, line, organization

ROUTERS: list[APIRouter] = [
    fleet.router,
    device_actions.router,
    batches.router,
    line.router,
    organization.router,
    hooks.router,
]
