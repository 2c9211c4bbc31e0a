"""A client of the factory PKI's HTTP API (a product's own CAs and its registration policy),
for ``lineside ca``: an administrator's side of the wire, with an admin API key.

It shares the factory client's wire conventions (errors, problem+json, one TLS context per
process, ids as one path segment) and, like it, knows the wire format only. The API key goes
in the Authorization header and nowhere else.
"""

from __future__ import annotations

from typing import Any

from lineside.entrypoints.cli.factory_client import ApiClient, UnexpectedAnswer, answer_of, as_object, segment

API = "/api/v1"


class AuthorityClient(ApiClient):
    """The factory PKI API at ``server`` as ``api_key`` (admin; read for list and show) sees it."""

    KEY_NEEDED = "This needs an admin API key: pass --api-key or set LINESIDE_API_KEY."

    def register(self, product_id: str, certificate_pem: str) -> dict[str, Any]:
        """The CA as registered, with its one-time ``challenge``."""
        path = f"{API}/products/{segment(product_id)}/certificate-authorities"
        return as_object(self._call("POST", path, {"certificate": certificate_pem}, expect=201))

    def verify(self, authority_id: str, verification_pem: str) -> dict[str, Any]:
        body = {"verification_certificate": verification_pem}
        return as_object(self._call("POST", f"{self._authority(authority_id)}/verify", body))

    def list(self, product_id: str) -> list[dict[str, Any]]:
        found = self._call("GET", f"{API}/products/{segment(product_id)}/certificate-authorities")
        if not isinstance(found, list):
            raise UnexpectedAnswer("The server answered with something other than a list of CAs.")
        return [as_object(row) for row in found]

    def get(self, authority_id: str) -> dict[str, Any]:
        return as_object(self._call("GET", self._authority(authority_id)))

    def disable(self, authority_id: str) -> dict[str, Any]:
        return as_object(self._call("POST", f"{self._authority(authority_id)}/disable", {}))

    def enable(self, authority_id: str) -> dict[str, Any]:
        return as_object(self._call("POST", f"{self._authority(authority_id)}/enable", {}))

    def delete(self, authority_id: str) -> None:
        response = self._send("DELETE", self._authority(authority_id), None, authenticated=True)
        if response.status_code != 204:
            answer_of(response, expect=(204,))  # raises the server's refusal

    def load_crl(self, authority_id: str, crl_pem: str) -> dict[str, Any]:
        return as_object(self._call("PUT", f"{self._authority(authority_id)}/crl", {"crl": crl_pem}))

    def set_registration(
        self, product_id: str, *, policy: str, identity: str, reregistration: bool
    ) -> dict[str, Any]:
        body = {"policy": policy, "identity": identity, "reregistration": reregistration}
        path = f"{API}/products/{segment(product_id)}/registration"
        return as_object(self._call("PUT", path, body))

    def approve(self, device_id: str) -> dict[str, Any]:
        return as_object(self._call("POST", f"{API}/devices/{segment(device_id)}/approve", {}))

    # -- the wire ----------------------------------------------------------------------------

    @staticmethod
    def _authority(authority_id: str) -> str:
        return f"{API}/certificate-authorities/{segment(authority_id)}"
