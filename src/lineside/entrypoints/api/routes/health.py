"""Liveness (the process answers) and readiness (it can do its work)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from lineside.entrypoints.api.dependencies import application
from lineside.entrypoints.api.problems import problem

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=None, summary="Liveness")
async def healthz() -> JSONResponse:
    """The process is alive and answering (for a liveness probe: restart it if this fails).
    Touches nothing else, so a database outage does not get healthy processes restarted."""
    return JSONResponse({"status": "ok"})


@router.get(
    "/readyz",
    response_model=None,
    summary="Readiness",
    responses={503: {"description": "A check failed; `checks` says which and why."}},
)
async def readyz(request: Request) -> JSONResponse:
    """Ready for traffic: the database answers, its schema is at this version's head, the data
    directory (server key) is readable, and the embedded MQTT broker listens (when enabled)."""
    checks = await run_in_threadpool(application(request).readiness)
    shown = {name: "ok" if reason is None else reason for name, reason in checks.items()}
    failing = [reason for reason in checks.values() if reason is not None]
    if failing:
        return problem(503, "Not ready", "; ".join(failing), checks=shown)
    return JSONResponse({"status": "ready", "checks": shown})
