"""The OpenAPI document, made true to what the server answers.

FastAPI documents a route's success and its 422; Lineside answers more than that. Every
operation here lists the error statuses it can answer, each an ``application/problem+json``
body of the shared ``Problem`` schema:

- every operation: 400 (a NUL in the URL, malformed JSON);
- with credentials (bearer API key, sign-in token, device token, broker hook secret): 401;
- with a caller's API key or sign-in token: 403 (a scope it lacks); broker hooks: 403 (refused);
- with path parameters or a caller: 404 (unknown here, or another organization's);
- that change something (POST, PATCH, DELETE) with a caller: 409 (the state does not allow it,
  or an Idempotency-Key reused with another body);
- with a body: 413 (over LINESIDE_MAX_BODY_BYTES) and 422 (it does not validate, or a JSON
  body came without Content-Type: application/json, which the detail then says);
- with query or path parameters: 422;
- and what a route declares itself (410, 429, 503).

Schemas written by hand for routes that parse several content types (``openapi_extra``)
may carry pydantic ``$defs``; those are moved to ``components/schemas``, where references
from the document root resolve.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from lineside.entrypoints.api.constraints import NO_NUL_PATTERN
from lineside.entrypoints.api.problems import PROBLEM_JSON

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details.",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}, "description": "Per row or per field."},
        "checks": {"type": "object", "description": "/readyz: each check and why it failed."},
    },
}
# A test run's reading, as deep as it goes (see TestRunIn.measurements).
MEASUREMENT_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "number"},
        {"type": "boolean"},
        {"type": "null"},
        {"type": "string", "pattern": NO_NUL_PATTERN},
        {"type": "array", "items": {"$ref": "#/components/schemas/Measurement"}},
        {
            "type": "object",
            "propertyNames": {"pattern": NO_NUL_PATTERN},
            "additionalProperties": {"$ref": "#/components/schemas/Measurement"},
        },
    ]
}
REASONS = {
    400: "Malformed request (a NUL in the URL, or a body that is not valid JSON).",
    401: "Missing, unknown, expired or revoked credentials.",
    403: "The credentials lack the scope this needs, or the quota is used up.",
    404: "Unknown, or belonging to another organization.",
    405: "Method not allowed (the Allow header lists those that are).",
    409: "The current state does not allow it, or it conflicts with a concurrent change.",
    410: "Gone: used, expired or deleted.",
    413: "The request body is larger than LINESIDE_MAX_BODY_BYTES.",
    422: "The request does not validate; `detail` (and `errors`) say where.",
    429: "Too many attempts; the Retry-After header says when to try again.",
    503: "Not ready.",
}
_CHANGES = {"post", "put", "patch", "delete"}
_CREDENTIAL_PREFIXES = ("/device/", "/broker/", "/v5/", "/api/v1/factory/duts", "/metrics")


# In the order a newcomer meets them: who you are, what you make, the devices, their
# credentials, the factory, the field, then what runs beside (Swagger UI lists them so).
TAGS: list[dict[str, str]] = [
    {"name": "organizations", "description": "Your organization, sub-organizations for clients, API keys."},
    {"name": "people", "description": "Accounts of people (owners): sign-up, sign-in, invitations."},
    {
        "name": "products",
        "description": "Products (device templates), metadata fields, device groups.",
    },
    {"name": "devices", "description": "Define devices one by one or in batches; their credentials; revoke."},
    {
        "name": "static tokens",
        "description": "The Blynk flow: units with a token and a QR claim code each.",
    },
    {
        "name": "claims",
        "description": "Owners claim devices by their QR code and transfer them; unclaim, disclaim, delete.",
    },
    {
        "name": "factory",
        "description": "The connected factory: enrollment tokens, DUTs, tests, blessing.",
    },
    {"name": "production enrollment", "description": "Electric Imp's production tokens and activation."},
    {
        "name": "provisioning",
        "description": "MQTT provisioning of devices (ThingsBoard-compatible).",
    },
    {"name": "firmware", "description": "Firmware releases per product, deployed to device groups."},
    {"name": "webhooks", "description": "Signed webhooks of every event, retried for three days."},
    {"name": "audit", "description": "Every event of your organization."},
    {"name": "device", "description": "What a device calls with its own device token."},
    {
        "name": "brokers",
        "description": "Hooks a production MQTT broker calls (EMQX, go-auth, ...).",
    },
    {"name": "operations", "description": "Liveness, readiness and metrics."},
]


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags or TAGS,
            )
            app.openapi_schema = describe_errors(document)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def describe_errors(document: dict[str, Any]) -> dict[str, Any]:
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    schemas["Measurement"] = MEASUREMENT_SCHEMA
    _hoist_definitions(document, schemas)
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                _no_nul(parameter.get("schema", {}))
            _summarise(operation)
            for status in sorted(_error_statuses(path, method, operation)):
                _add_problem(operation, status)
            operation["responses"] = dict(sorted(operation["responses"].items()))
    return document


def _error_statuses(path: str, method: str, operation: dict[str, Any]) -> set[int]:
    parameters = operation.get("parameters", [])
    has_body = "requestBody" in operation
    caller = bool(operation.get("security"))
    credentials = caller or path.startswith(_CREDENTIAL_PREFIXES)
    statuses = {400}
    if credentials:
        statuses.add(401)
    if caller:
        statuses |= {403, 404}
    if path.startswith("/broker/"):
        statuses.add(403)  # a hook refuses, or event hooks are off (no LINESIDE_BROKER_HOOK_SECRET)
    if any(parameter.get("in") == "path" for parameter in parameters):
        statuses.add(404)
    if caller and method in _CHANGES:
        statuses.add(409)
    if has_body:
        statuses |= {413, 422}
    if parameters:
        statuses.add(422)
    return statuses


def _summarise(operation: dict[str, Any]) -> None:
    """The docstring's first sentence as the summary, instead of the handler's name."""
    description = operation.get("description", "").replace("``", "`")
    first = description.split("\n\n")[0].replace("\n", " ").strip()
    sentence = first.split(". ")[0].rstrip(".").strip()
    if sentence:
        operation["summary"] = sentence
        operation["description"] = description


def _no_nul(schema: dict[str, Any]) -> None:
    """A NUL anywhere in a URL is refused (400): say so for every text parameter."""
    for branch in [schema, *schema.get("anyOf", [])]:
        if branch.get("type") == "string" and "pattern" not in branch and "enum" not in branch:
            branch["pattern"] = NO_NUL_PATTERN


def _add_problem(operation: dict[str, Any], status: int) -> None:
    responses = operation.setdefault("responses", {})
    key = str(status)
    existing = responses.get(key, {})
    content = existing.get("content", {})
    if status == 422:
        # FastAPI's own 422 entry describes its validation error body; ours is a problem.
        content.pop("application/json", None)
    content[PROBLEM_JSON] = {"schema": {"$ref": "#/components/schemas/Problem"}}
    if status == 400:
        # A request line the HTTP server itself cannot parse is refused before the app
        # sees it, in uvicorn's plain text.
        content["text/plain"] = {"schema": {"type": "string"}}
    responses[key] = {
        "description": existing.get("description") or REASONS.get(status, "Error"),
        "content": content,
    }
    if status == 429:
        responses[key]["headers"] = {
            "Retry-After": {"schema": {"type": "integer"}, "description": "Seconds."}
        }


def _hoist_definitions(document: dict[str, Any], schemas: dict[str, Any]) -> None:
    """Move every nested ``$defs`` into components/schemas and point references there."""

    def visit(node: Any) -> Any:
        if isinstance(node, dict):
            for name, definition in node.pop("$defs", {}).items():
                schemas.setdefault(name, visit(definition))
            return {key: visit(value) for key, value in node.items()}
        if isinstance(node, list):
            return [visit(item) for item in node]
        return node

    document["paths"] = visit(document.get("paths", {}))
    text = json.dumps(document["paths"]).replace('"#/$defs/', '"#/components/schemas/')
    document["paths"] = json.loads(text)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """A route's own error statuses beyond the ones every route of its kind has (410, 429...)."""
    return {status: {"description": REASONS[status]} for status in statuses}
