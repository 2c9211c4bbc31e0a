"""Liveness with a database round trip."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from lineside.entrypoints.api.dependencies import application
from lineside.entrypoints.api.problems import problem

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=None)
async def healthz(request: Request) -> JSONResponse:
    if await run_in_threadpool(application(request).database_is_reachable):
        return JSONResponse({"status": "ok"})
    return problem(503, "Database unreachable", "The database did not answer.")
