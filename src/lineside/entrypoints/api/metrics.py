"""``GET /metrics`` (Prometheus text format) and the middleware that times every request.

Open by default, as Prometheus exporters are; with LINESIDE_METRICS_TOKEN set it answers only
``Authorization: Bearer <token>``; LINESIDE_METRICS_ENABLED=0 removes it.
"""

from __future__ import annotations

import hmac
import time

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lineside.adapters.metrics import CONTENT_TYPE, PrometheusMetrics
from lineside.domain.errors import Unauthenticated
from lineside.entrypoints.api.dependencies import application

router = APIRouter(tags=["operations"])
UNMATCHED = "(unmatched)"


@router.get(
    "/metrics",
    summary="Metrics for Prometheus",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request) -> Response:
    """Counters, histograms and gauges in Prometheus text format (see docs/operations.md)."""
    settings = application(request).settings
    if settings.metrics_token is not None:
        expected = f"Bearer {settings.metrics_token.get_secret_value()}".encode()
        given = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(expected, given):
            raise Unauthenticated("Send 'Authorization: Bearer <LINESIDE_METRICS_TOKEN>'.")
    body = await run_in_threadpool(application(request).metrics.exposition)
    return Response(body, media_type=CONTENT_TYPE)


class RequestMetrics:
    """Counts and times every HTTP request by method, route template (never the raw path:
    ids would make a series each) and status."""

    def __init__(self, app: ASGIApp, metrics: PrometheusMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def observing_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observing_send)
        finally:
            route = scope.get("route")
            template = route.path if isinstance(route, BaseRoute) and hasattr(route, "path") else UNMATCHED
            self.metrics.request_answered(scope["method"], template, status, time.perf_counter() - started)
