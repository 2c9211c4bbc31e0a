"""A typed client of the factory HTTP API, for the line's side of the wire.

One client serves ``lineside factory``, its line simulator and ``bench/factory_line.py``. It
holds one keep-alive connection (a synchronous ``httpx.Client``): a fixture does one thing at
a time, and a simulated line runs one client per fixture thread. That is also the cheap way to
use httpx here: about 0.4 ms of client CPU per request, where one ``httpx.AsyncClient``
shared by 32 tasks costs about 2.3 ms (its pool scans every connection per request).

It lives with the CLI rather than in ``adapters``: it is not a port the services use, it is a
way in from outside, like the CLI itself. It knows the wire format only, no domain types.

The API key goes in the Authorization header and nowhere else: not in errors, not in reprs.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Self
from urllib.parse import quote

import httpx

from lineside.entrypoints.cli.reaching import cannot_reach

DEFAULT_SERVER = "http://127.0.0.1:8080"
DEFAULT_TIMEOUT_SECONDS = 30.0


class FactoryClientError(Exception):
    """Anything that kept a request from getting an answer it could use."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ServerUnreachable(FactoryClientError):
    """No HTTP answer at all: refused, timed out, DNS, TLS."""


class MissingApiKey(FactoryClientError):
    """The request needs a factory API key and the client has none."""


class UnexpectedAnswer(FactoryClientError):
    """An answer that is not what the factory API sends: another server, or another version."""


class ApiRefused(FactoryClientError):
    """The server answered with an error (a problem+json body, when it is Lineside)."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(f"{detail} ({status} {title})" if detail else f"{status} {title}")
        self.status = status
        self.title = title
        self.detail = detail


@dataclass(frozen=True)
class EnrollmentToken:
    id: str
    product_id: str
    name: str | None
    prefix: str
    token: str | None  # the secret: only in the answer that created it
    body: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class EnrolledDut:
    device_id: str
    state: str
    new: bool  # 201: made now; 200: this hardware id had already enrolled
    factory_firmware: dict[str, Any] | None
    body: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class RecordedTest:
    passed: bool
    body: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class Blessing:
    result: str  # "blessed" or "failed"
    led: str  # "green" or "red"
    device_id: str
    body: dict[str, Any] = field(repr=False)

    @property
    def blessed(self) -> bool:
        return self.result == "blessed"


@dataclass(frozen=True)
class ProductionToken:
    plan_id: str
    token_id: str
    expires_at: str
    product_id: str | None
    body: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class ClaimStatus:
    status: str  # "pending", "claimed" or "expired"
    device_id: str | None
    device_url: str | None
    expires_at: str | None
    body: dict[str, Any] = field(repr=False)


class ApiClient:
    """One keep-alive connection to a Lineside server's API, as ``api_key``: what the
    factory client and the CA client (``lineside ca``) share of the wire."""

    KEY_NEEDED = "This needs an API key: pass --api-key or set LINESIDE_API_KEY."

    def __init__(
        self,
        server: str = DEFAULT_SERVER,
        api_key: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.server = server.rstrip("/")
        self._api_key = api_key
        self._http = httpx.Client(
            base_url=self.server,
            timeout=timeout,
            transport=transport,
            verify=_tls_context(),
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            headers={"accept": "application/json"},
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.server!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None, expect: int = 200) -> Any:
        return answer_of(self._send(method, path, body, authenticated=True), expect=(expect,))

    def _send(
        self, method: str, path: str, body: dict[str, Any] | None, *, authenticated: bool
    ) -> httpx.Response:
        headers: dict[str, str] = {}
        if authenticated:
            if not self._api_key:
                raise MissingApiKey(self.KEY_NEEDED)
            headers["authorization"] = f"Bearer {self._api_key}"
        try:
            return self._http.request(method, path, json=body, headers=headers)
        except httpx.ConnectError as error:
            raise ServerUnreachable(cannot_reach(self.server, error)) from None
        except httpx.TimeoutException:
            raise ServerUnreachable(f"{self.server} did not answer {method} {path} in time.") from None
        except httpx.HTTPError as error:
            raise ServerUnreachable(f"{method} {self.server}{path} failed: {error}") from None


class FactoryClient(ApiClient):
    """The factory API at ``server``, as a fixture (``api_key``: a factory-scoped key) sees it.

    Its httpx plumbing mirrors the device SDK's DeviceHttp rather than sharing it: the SDK
    stands alone, and a fixture's errors (FactoryClientError) are not a device's."""

    KEY_NEEDED = "This needs a factory API key: pass --api-key or set LINESIDE_API_KEY."

    # -- factory enrollment tokens -----------------------------------------------------------

    def create_enrollment_token(self, product_id: str, name: str | None = None) -> EnrollmentToken:
        body: dict[str, Any] = {"product_id": product_id}
        if name is not None:
            body["name"] = name
        return _enrollment_token(self._call("POST", "/api/v1/factory/enrollment-tokens", body, expect=201))

    def list_enrollment_tokens(self) -> list[EnrollmentToken]:
        answer = self._call("GET", "/api/v1/factory/enrollment-tokens")
        rows = answer.get("items", []) if isinstance(answer, dict) else answer
        return [_enrollment_token(row) for row in rows]

    def revoke_enrollment_token(self, token_id: str) -> dict[str, Any]:
        path = f"/api/v1/factory/enrollment-tokens/{segment(token_id)}/revoke"
        return as_object(self._call("POST", path, {}))

    # -- the unit on the line ----------------------------------------------------------------

    def enroll(
        self, enrollment_token: str, hardware_id: str, serial_number: str | None = None
    ) -> EnrolledDut:
        """Enroll a Device Under Test: the enrollment token is its only credential."""
        body: dict[str, Any] = {"enrollment_token": enrollment_token, "hardware_id": hardware_id}
        if serial_number is not None:
            body["serial_number"] = serial_number
        response = self._send("POST", "/api/v1/factory/duts", body, authenticated=False)
        answer = as_object(answer_of(response, expect=(200, 201)))
        device = as_object(answer.get("device"))
        firmware = answer.get("factory_firmware")
        return EnrolledDut(
            device_id=_text(device, "id"),
            state=_text(device, "state"),
            new=response.status_code == 201,
            factory_firmware=firmware if isinstance(firmware, dict) else None,
            body=answer,
        )

    def record_test(
        self,
        device_id: str,
        *,
        passed: bool,
        measurements: dict[str, Any] | None = None,
        fixture: str | None = None,
        operator: str | None = None,
    ) -> RecordedTest:
        body: dict[str, Any] = {"passed": passed, "measurements": measurements or {}}
        if fixture is not None:
            body["fixture"] = fixture
        if operator is not None:
            body["operator"] = operator
        answer = as_object(self._call("POST", f"/api/v1/devices/{segment(device_id)}/test-runs", body, 201))
        return RecordedTest(passed=bool(answer.get("passed", passed)), body=answer)

    def bless(self, device_id: str) -> Blessing:
        answer = as_object(self._call("POST", f"/api/v1/devices/{segment(device_id)}/bless", {}))
        device = answer.get("device")
        return Blessing(
            result=_text(answer, "result"),
            led=str(answer.get("led", "")),
            device_id=_text(device, "id") if isinstance(device, dict) else device_id,
            body=answer,
        )

    # -- production enrollment tokens and their claims ---------------------------------------

    def create_production_token(self, product_id: str | None = None) -> ProductionToken:
        body: dict[str, Any] = {} if product_id is None else {"product_id": product_id}
        answer = as_object(self._call("POST", "/api/v1/enrollment-tokens", body, expect=201))
        return ProductionToken(
            plan_id=_text(answer, "plan_id"),
            token_id=_text(answer, "token_id"),
            expires_at=str(answer.get("expires_at")),
            product_id=answer.get("product_id"),
            body=answer,
        )

    def claim_status(self, token_id: str) -> ClaimStatus:
        answer = as_object(self._call("GET", f"/api/v1/enrollment-tokens/{segment(token_id)}"))
        return ClaimStatus(
            status=_text(answer, "status"),
            device_id=answer.get("device_id"),
            device_url=answer.get("device_url"),
            expires_at=answer.get("expires_at"),
            body=answer,
        )


@cache
def _tls_context() -> ssl.SSLContext:
    """Loading the CA bundle costs about 20 ms of CPU: once per process, not per fixture."""
    return httpx.create_ssl_context()


def segment(value: str) -> str:
    """An id as one path segment, whatever the user typed (no ``../`` into other routes)."""
    return quote(value, safe="") or "-"


def answer_of(response: httpx.Response, *, expect: tuple[int, ...]) -> Any:
    if response.status_code not in expect:
        raise _refusal(response)
    try:
        return response.json()
    except ValueError:
        path, status = response.request.url.path, response.status_code
        raise UnexpectedAnswer(f"{path} answered {status} without a JSON body.") from None


def _refusal(response: httpx.Response) -> ApiRefused:
    title, detail = response.reason_phrase or "Error", ""
    try:
        problem = response.json()
    except ValueError:
        problem = None
    if isinstance(problem, dict):
        title = str(problem.get("title") or title)
        detail = str(problem.get("detail") or "")
    elif response.status_code in (301, 302, 303, 307, 308):
        detail = f"the server redirects to {response.headers.get('location', 'elsewhere')}; use that URL"
    elif response.status_code == 404:
        url = response.request.url
        detail = f"{url.path} is not there: is {url.host} a Lineside server of this version?"
    return ApiRefused(response.status_code, title, detail)


def as_object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise UnexpectedAnswer("The server answered with something other than a JSON object.")
    return value


def _text(row: dict[str, Any], key: str) -> str:
    value = row.get(key)
    if value is None:
        raise UnexpectedAnswer(f"The server's answer has no {key!r}.")
    return str(value)


def _enrollment_token(value: Any) -> EnrollmentToken:
    row = as_object(value)
    return EnrollmentToken(
        id=_text(row, "id"),
        product_id=str(row.get("product_id")),
        name=row.get("name"),
        prefix=str(row.get("prefix", "")),
        token=row.get("token"),
        body=row,
    )
