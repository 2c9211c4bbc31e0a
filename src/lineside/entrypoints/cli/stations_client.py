"""A client of the offline stations' HTTP API, for ``lineside station create | list | show |
revoke``: an administrator's side of the wire, with an admin API key (a read key lists and
shows). It shares the factory client's wire conventions and knows the wire format only."""

from __future__ import annotations

from typing import Any

from lineside.entrypoints.cli.factory_client import ApiClient, UnexpectedAnswer, as_object, segment

API = "/api/v1"


class StationClient(ApiClient):
    """The stations API at ``server`` as ``api_key`` sees it."""

    KEY_NEEDED = "This needs an admin API key: pass --api-key or set LINESIDE_API_KEY."

    @property
    def api_key(self) -> str | None:
        return self._api_key

    def create(self, product_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """The station and its bundle (which holds its keys and the line's secrets: shown once)."""
        path = f"{API}/products/{segment(product_id)}/stations"
        return as_object(self._call("POST", path, body, expect=201))

    def list(self, product_id: str | None) -> list[dict[str, Any]]:
        path = f"{API}/stations" + (f"?product_id={segment(product_id)}" if product_id else "")
        found = self._call("GET", path)
        if not isinstance(found, list):
            raise UnexpectedAnswer("The server answered with something other than a list of stations.")
        return [as_object(row) for row in found]

    def get(self, station_id: str) -> dict[str, Any]:
        return as_object(self._call("GET", f"{API}/stations/{segment(station_id)}"))

    def revoke(self, station_id: str, as_of: str | None = None) -> dict[str, Any]:
        body = {} if as_of is None else {"as_of": as_of}
        return as_object(self._call("POST", f"{API}/stations/{segment(station_id)}/revoke", body))
