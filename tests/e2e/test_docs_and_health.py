"""The server's own pages: health, OpenAPI and interactive docs that need no CDN."""

from __future__ import annotations

import httpx


def test_healthz_answers_ok_while_the_process_is_alive(http: httpx.Client) -> None:
    response = http.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_the_openapi_document_describes_every_route_and_bearer_auth(http: httpx.Client) -> None:
    document = http.get("/openapi.json").json()
    assert {"/api/v1/devices", "/api/v1/device-batches", "/device/v1/me"} <= set(document["paths"])
    schemes = document["components"]["securitySchemes"]
    assert any(scheme.get("scheme") == "bearer" for scheme in schemes.values())


def test_the_docs_page_loads_its_scripts_from_this_server(http: httpx.Client) -> None:
    page = http.get("/docs")
    assert page.status_code == 200
    assert "cdn." not in page.text
    assert "/docs/assets/swagger-ui-bundle.js" in page.text
    script = http.get("/docs/assets/swagger-ui-bundle.js")
    assert script.status_code == 200
    assert len(script.content) > 100_000
