"""A client of the factory PKI's HTTP API (a product's own CAs and its registration policy),
for ``lineside ca``: an administrator's side of the wire, with an admin API key.

It shares the factory client's wire conventions (errors, problem+json, one TLS context per
process, ids as one path segment) and, like it, knows the wire format only. The API key goes
in the Authorization header and nowhere else.
"""

from __future__ import annotations

from typing import Any, Self

import httpx

from lineside.entrypoints.cli.factory_client import (
    DEFAULT_SERVER,
    DEFAULT_TIMEOUT_SECONDS,
    MissingApiKey,
    ServerUnreachable,
    UnexpectedAnswer,
    _answer,
    _object,
    _segment,
    _tls_context,
)
from lineside.entrypoints.cli.reaching import cannot_reach

API = "/api/v1"


class AuthorityClient:
    """The factory PKI API at ``server`` as ``api_key`` (admin; read for list and show) sees it."""

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
            headers={"accept": "application/json"},
        )

    def __repr__(self) -> str:
        return f"AuthorityClient({self.server!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._http.close()

    def register(self, product_id: str, certificate_pem: str) -> dict[str, Any]:
        """The CA as registered, with its one-time ``challenge``."""
        path = f"{API}/products/{_segment(product_id)}/certificate-authorities"
        return _object(self._call("POST", path, {"certificate": certificate_pem}, expect=201))

    def verify(self, authority_id: str, verification_pem: str) -> dict[str, Any]:
        body = {"verification_certificate": verification_pem}
        return _object(self._call("POST", f"{self._authority(authority_id)}/verify", body))

    def list(self, product_id: str) -> list[dict[str, Any]]:
        found = self._call("GET", f"{API}/products/{_segment(product_id)}/certificate-authorities")
        if not isinstance(found, list):
            raise UnexpectedAnswer("The server answered with something other than a list of CAs.")
        return [_object(row) for row in found]

    def get(self, authority_id: str) -> dict[str, Any]:
        return _object(self._call("GET", self._authority(authority_id)))

    def disable(self, authority_id: str) -> dict[str, Any]:
        return _object(self._call("POST", f"{self._authority(authority_id)}/disable", {}))

    def enable(self, authority_id: str) -> dict[str, Any]:
        return _object(self._call("POST", f"{self._authority(authority_id)}/enable", {}))

    def delete(self, authority_id: str) -> None:
        response = self._send("DELETE", self._authority(authority_id), None)
        if response.status_code != 204:
            _answer(response, expect=(204,))  # raises the server's refusal

    def load_crl(self, authority_id: str, crl_pem: str) -> dict[str, Any]:
        return _object(self._call("PUT", f"{self._authority(authority_id)}/crl", {"crl": crl_pem}))

    def set_registration(
        self, product_id: str, *, policy: str, identity: str, reregistration: bool
    ) -> dict[str, Any]:
        body = {"policy": policy, "identity": identity, "reregistration": reregistration}
        path = f"{API}/products/{_segment(product_id)}/registration"
        return _object(self._call("PUT", path, body))

    def approve(self, device_id: str) -> dict[str, Any]:
        return _object(self._call("POST", f"{API}/devices/{_segment(device_id)}/approve", {}))

    # -- the wire ----------------------------------------------------------------------------

    @staticmethod
    def _authority(authority_id: str) -> str:
        return f"{API}/certificate-authorities/{_segment(authority_id)}"

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None, expect: int = 200) -> Any:
        return _answer(self._send(method, path, body), expect=(expect,))

    def _send(self, method: str, path: str, body: dict[str, Any] | None) -> httpx.Response:
        if not self._api_key:
            raise MissingApiKey("This needs an admin API key: pass --api-key or set LINESIDE_API_KEY.")
        headers = {"authorization": f"Bearer {self._api_key}"}
        try:
            return self._http.request(method, path, json=body, headers=headers)
        except httpx.HTTPError as error:
            raise ServerUnreachable(cannot_reach(self.server, error)) from None
