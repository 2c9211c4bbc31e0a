"""Unknown query parameters are refused, not ignored: ``?prodcut_id=...`` silently listing
every device is how a typo turns into a wrong answer. Broker hooks are exempt: brokers send
what their configuration says (a secret, a client id), and each hook reads what it needs."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from lineside.domain.errors import InvalidInput

_EXEMPT_PREFIXES = ("/broker/",)
_known: dict[int, frozenset[str]] = {}


def refuse_unknown_query_parameters(request: Request) -> None:
    if not request.query_params:
        return
    route = request.scope.get("route")
    if (
        not isinstance(route, APIRoute)
        or not route.include_in_schema
        or route.path.startswith(_EXEMPT_PREFIXES)
    ):
        return
    unknown = sorted(set(request.query_params) - _names_of(route))
    if unknown:
        listed = ", ".join(f"'{name}'" for name in unknown)
        raise InvalidInput(f"Unknown query parameter {listed}; this call takes {_described(route)}.")


def _names_of(route: APIRoute) -> frozenset[str]:
    # Computed once per route: the parameters its handler and dependencies declare, and any a
    # route that parses its own body documents in openapi_extra.
    names = _known.get(id(route))
    if names is None:
        declared = {parameter.alias for parameter in _query_parameters(route.dependant)}
        extra = (route.openapi_extra or {}).get("parameters", [])
        declared |= {parameter["name"] for parameter in extra if parameter.get("in") == "query"}
        names = _known[id(route)] = frozenset(declared)
    return names


def _query_parameters(dependant: Dependant) -> list[Any]:
    found: list[Any] = list(dependant.query_params)
    for sub in dependant.dependencies:
        found.extend(_query_parameters(sub))
    return found


def _described(route: APIRoute) -> str:
    names = sorted(_names_of(route))
    return "no query parameters" if not names else "only " + ", ".join(names)
