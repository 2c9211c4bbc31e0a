"""The station's HTTP app: the factory line (``line_routes``), production tokens forwarded to
the server while it is reachable, and the station's own status (/, /status, /metrics, /healthz).

Production tokens are used by devices connecting to the server, so the station cannot make
them offline: it forwards those calls, with the caller's own credentials, and answers 503
when the link is down.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import httpx
from fastapi import APIRouter, FastAPI, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse

from lineside import __version__
from lineside.bootstrap import Application
from lineside.entrypoints.api.problems import install_problem_handlers, problem
from lineside.entrypoints.station import line_routes
from lineside.entrypoints.station.bundle import StationBundle
from lineside.entrypoints.station.status import (
    StationStatus,
    SyncState,
    metrics_text,
    station_status,
    status_page,
)

FORWARD_TIMEOUT_SECONDS = 10.0
FORWARDED_HEADERS = ("authorization", "content-type", "accept", "lineside-organization")
LINK_DOWN = "Production tokens are used by devices connecting to the server; reconnect the station's link."


@dataclass(frozen=True)
class StationRuntime:
    application: Application
    bundle: StationBundle
    data_dir: Path
    server_url: str
    sync: SyncState


def create_station_app(runtime: StationRuntime) -> FastAPI:
    app = FastAPI(title="Lineside station", version=__version__, docs_url=None, redoc_url=None)
    app.state.lineside = runtime.application
    app.state.station_post = runtime.bundle.post
    app.state.station = runtime
    install_problem_handlers(app)
    app.include_router(line_routes.router)
    app.include_router(_forwarded)
    app.include_router(_own)
    return app


def _runtime(request: Request) -> StationRuntime:
    runtime: StationRuntime = request.app.state.station
    return runtime


async def _status(request: Request) -> StationStatus:
    runtime = _runtime(request)
    return await run_in_threadpool(station_status, runtime.application.services, runtime.bundle, runtime.sync)


_own = APIRouter(tags=["station"])


@_own.get("/", response_class=HTMLResponse)
async def home(request: Request) -> HTMLResponse:
    return HTMLResponse(status_page(await _status(request)))


@_own.get("/status")
async def status_json(request: Request) -> JSONResponse:
    return JSONResponse((await _status(request)).as_json())


@_own.get("/metrics", response_class=PlainTextResponse)
async def metrics(request: Request) -> PlainTextResponse:
    return PlainTextResponse(metrics_text(await _status(request)), media_type="text/plain; version=0.0.4")


@_own.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


_forwarded = APIRouter(tags=["production tokens (forwarded to the server)"])


@_forwarded.post("/v5/enroll")
async def electric_imp_enroll(request: Request) -> Response:
    return await _forward(request)


@_forwarded.post("/api/v1/enrollment-tokens")
async def create_production_token(request: Request) -> Response:
    return await _forward(request)


@_forwarded.get("/api/v1/enrollment-tokens/{token_id}")
async def token_claim(request: Request, token_id: str) -> Response:
    return await _forward(request)


async def _forward(request: Request) -> Response:
    """The same request to the server, and its answer as it is."""
    url = _runtime(request).server_url + request.url.path
    headers = {name: value for name, value in request.headers.items() if name.lower() in FORWARDED_HEADERS}
    try:
        async with httpx.AsyncClient(timeout=FORWARD_TIMEOUT_SECONDS) as http:
            answer = await http.request(request.method, url, headers=headers, content=await request.body())
    except httpx.TransportError:
        return problem(status.HTTP_503_SERVICE_UNAVAILABLE, "Server unreachable", LINK_DOWN)
    kept = {
        name: value
        for name, value in answer.headers.items()
        if name.lower() in ("content-type", "www-authenticate")
    }
    return Response(answer.content, status_code=answer.status_code, headers=kept)
