"""The OpenAPI document describes the API: schemathesis generates requests from it, valid and
invalid, for every operation, sends them to the live server over a socket, and checks every
answer against the document (its default checks: no 5xx, only documented statuses, content
types, headers and body schemas, and more)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance
from schemathesis.core.errors import InvalidSchema
from schemathesis.core.parameters import ParameterLocation
from schemathesis.core.result import Err, Result

from lineside.bootstrap import Application
from tests.support.api import Tenant, new_tenant
from tests.support.server import http_client_for

MAX_EXAMPLES = int(os.environ.get("LINESIDE_SCHEMATHESIS_EXAMPLES", "8"))
# Operations where a request the schema allows can still be refused for a reason a schema
# cannot state, so "valid data must be accepted" does not hold for them (every other check
# still runs):
# - POST /api/v1/products: metadata field names must differ (JSON Schema's uniqueItems compares
#   whole objects, not one of their properties).
# - POST /api/v1/device-batches: the CSV form names the product in the query, the JSON form
#   in the body; OpenAPI cannot make a query parameter required for one media type only.
# - POST /api/v1/products/{product_id}/static-tokens: a CSV's columns must be the product's
#   fields, and its bytes UTF-8.
# - POST /api/v1/webhooks: the URL's host must resolve (over DNS) to a public address.
# - The factory PKI's CA certificate, proof of possession and CRL: see below.
# - Offline stations: creating one takes the line's live enrollment token and a live factory
#   key of the organization (secrets no schema can know), and a ledger upload is believed by
#   its hashes and signatures.
ACCEPTANCE_UNKNOWABLE = {
    "POST /api/v1/products",
    "POST /api/v1/device-batches",
    "POST /api/v1/products/{product_id}/static-tokens",
    "POST /api/v1/webhooks",
    # A CA certificate, a proof of possession, a CRL (PEM): what makes one acceptable is its
    # content and its signatures, which no JSON schema can say.
    "POST /api/v1/products/{product_id}/certificate-authorities",
    "POST /api/v1/certificate-authorities/{authority_id}/verify",
    "PUT /api/v1/certificate-authorities/{authority_id}/crl",
    "POST /api/v1/products/{product_id}/stations",
    "POST /api/v1/stations/{station_id}/ledger",
}
Operation = schemathesis.APIOperation[Any, Any, Any, Any]


@pytest.fixture(scope="module")
def live(application: Application) -> Iterator[tuple[str, Tenant]]:
    with http_client_for(application) as http:
        yield str(http.base_url).rstrip("/"), new_tenant(application, http)


def operation_of(result: Result[Operation, InvalidSchema]) -> Operation:
    if isinstance(result, Err):
        raise result.err()
    return result.ok()


def failures_of(operation: Operation, mode: GenerationMode, url: str, key: str) -> str | None:
    @settings(
        max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case: schemathesis.Case[Operation]) -> None:
        excluded = [positive_data_acceptance] if operation.label in ACCEPTANCE_UNKNOWABLE else []
        # A case that leaves out or spoils the Authorization header on purpose keeps it so.
        spoiled_headers = case.meta is not None and case.meta.is_negative_at(ParameterLocation.HEADER)
        credentials = {} if spoiled_headers else {"Authorization": f"Bearer {key}"}
        case.call_and_validate(base_url=url, headers=credentials, excluded_checks=excluded)

    try:
        check()
    except Unsatisfiable:
        return None  # no invalid request exists for it (an operation without inputs)
    except (Exception, BaseExceptionGroup) as failure:  # schemathesis groups what it found
        return f"{mode.value} {operation.label}: " + " ".join(str(failure).split())[:1500]
    return None


@pytest.mark.parametrize("mode", list(GenerationMode), ids=lambda mode: mode.value)
def test_every_answer_is_one_the_document_describes(live: tuple[str, Tenant], mode: GenerationMode) -> None:
    url, tenant = live
    schema = schemathesis.openapi.from_dict(httpx.get(f"{url}/openapi.json").json())
    operations = [operation_of(result) for result in schema.get_all_operations()]

    failures = [failure for op in operations if (failure := failures_of(op, mode, url, tenant.api_key))]

    assert len(operations) > 80
    assert not failures, "\n\n".join(failures)
