"""The demo's HTTP calls: the public API with a bearer credential, and one-line failures."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Self

import httpx

from lineside.entrypoints.cli.demo_env import DemoFailed

PAGE_SIZE = 1000


class DemoApi:
    """``httpx.Client`` on the API; every call names the status it expects."""

    def __init__(self, base_url: str, credential: str | None = None) -> None:
        headers = {"authorization": f"Bearer {credential}"} if credential else {}
        self._http = httpx.Client(base_url=base_url, timeout=30.0, headers=headers)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._http.close()

    def as_(self, credential: str) -> DemoApi:
        """The same server, another caller (close it too)."""
        return DemoApi(str(self._http.base_url), credential)

    def call(self, method: str, path: str, expect: int = 200, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise DemoFailed(f"{method} {path}: {error.__class__.__name__}: {error}") from None
        if response.status_code != expect:
            raise DemoFailed(f"{method} {path} answered {response.status_code}: {_detail(response)}")
        return response

    def json(self, method: str, path: str, expect: int = 200, **kwargs: Any) -> Any:
        return self.call(method, path, expect, **kwargs).json()

    def devices(self, **filters: str) -> Iterator[dict[str, Any]]:
        """Every device the caller sees that matches ``filters``, page by page."""
        params: dict[str, Any] = {**filters, "limit": PAGE_SIZE}
        while True:
            page = self.json("GET", "/api/v1/devices", params=params)
            yield from page["items"]
            if not page.get("next_cursor"):
                return
            params["cursor"] = page["next_cursor"]

    def count_devices(self, **filters: str) -> int:
        return sum(1 for _device in self.devices(**filters))


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("title") or body)[:300]
    return str(body)[:300]
