"""Builds the FastAPI application around an already-bootstrapped Application."""

from __future__ import annotations

from functools import partial

from fastapi import Depends, FastAPI
from starlette.routing import BaseRoute
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from lineside import __version__
from lineside.bootstrap import Application
from lineside.entrypoints.api import metrics
from lineside.entrypoints.api.dependencies import recheck_credential
from lineside.entrypoints.api.docs import install_docs
from lineside.entrypoints.api.fast_paths import (
    ME_PATH,
    MOSQUITTO_ACL_PATH,
    MOSQUITTO_USER_PATH,
    DeviceIdentityFastPath,
    MosquittoPluginFastPath,
)
from lineside.entrypoints.api.metrics import RequestMetrics
from lineside.entrypoints.api.middleware import BodySizeLimit, IdempotencyKeys, RefuseNulBytes
from lineside.entrypoints.api.openapi import install_openapi
from lineside.entrypoints.api.peers import RememberPeer
from lineside.entrypoints.api.problems import install_problem_handlers
from lineside.entrypoints.api.query_parameters import refuse_unknown_query_parameters
from lineside.entrypoints.api.request_ids import RequestIds
from lineside.entrypoints.api.routes import (
    audit,
    authorities,
    broker_hooks,
    claims,
    device_activation,
    device_api,
    device_firmware,
    device_registration,
    devices,
    enrollment,
    factory,
    firmware,
    health,
    organizations,
    people,
    products,
    provisioning,
    static_tokens,
    stations,
    webhooks,
)
from lineside.entrypoints.api.routes.broker_hooks import mosquitto
from lineside.entrypoints.web import claim_pages, console, home, owner_pages
from lineside.entrypoints.worker import worker_lifespan

DESCRIPTION = """
Lineside carries each connected device from the factory line to its owner's hands.

Authenticate with `Authorization: Bearer <API key>` (devices: their device token).
Errors are `application/problem+json` (RFC 9457). Send `Idempotency-Key` on a create
call to make a retry return the first answer instead of creating twice.
"""


def create_app(application: Application) -> FastAPI:
    app = FastAPI(
        title="Lineside",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,
        redoc_url=None,
        lifespan=worker_lifespan(application),
        dependencies=[Depends(refuse_unknown_query_parameters)],
    )
    app.state.lineside = application
    install_problem_handlers(app)
    install_openapi(app)
    install_docs(app)
    # The device API first, then the factory line: devices and fixtures call them far more
    # often than people call the rest, and FastAPI tries routes in order, one by one.
    for module in (
        device_api,
        # Production brokers ask on every connection and (uncached) every publish.
        broker_hooks,
        factory,
        device_activation,
        device_registration,
        enrollment,
        device_firmware,
        health,
        organizations,
        products,
        authorities,
        stations,
        provisioning,
        devices,
        audit,
        people,
        claims,
        static_tokens,
        firmware,
        webhooks,
        claim_pages,
        owner_pages,
        home,
    ):
        app.include_router(module.router)
    for router in console.ROUTERS:
        app.include_router(router)
    if application.settings.metrics_enabled:
        app.include_router(metrics.router)
    # Added last runs first: the size cap guards the idempotency middleware's body read.
    app.add_middleware(
        IdempotencyKeys,
        store=application.idempotency,
        check_credential=partial(recheck_credential, application.services),
    )
    app.add_middleware(BodySizeLimit, max_bytes=application.settings.max_body_bytes)
    app.add_middleware(RefuseNulBytes)
    app.add_middleware(
        DeviceIdentityFastPath, application=application, route=_route(device_api.router.routes, ME_PATH)
    )
    hot = (MOSQUITTO_USER_PATH, MOSQUITTO_ACL_PATH)
    plugin_routes = {path: _route(mosquitto.router.routes, path) for path in hot}
    app.add_middleware(MosquittoPluginFastPath, application=application, routes=plugin_routes)
    app.add_middleware(RequestMetrics, metrics=application.metrics)
    app.add_middleware(RequestIds)
    _believe_forwarded_headers_from(app, application.settings.trusted_proxy_list)
    app.add_middleware(RememberPeer)  # outermost: the socket's peer, before any header rewrites it
    return app


def _route(routes: list[BaseRoute], path: str) -> BaseRoute:
    return next(route for route in routes if getattr(route, "path", None) == path)


def _believe_forwarded_headers_from(app: FastAPI, proxies: list[str]) -> None:
    """X-Forwarded-For picks the client address that rate limits count by, so it is believed
    only from the proxies an operator listed (LINESIDE_TRUSTED_PROXIES), never by default."""
    if proxies:
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=proxies)
