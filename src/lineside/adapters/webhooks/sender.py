"""Sending one webhook attempt over HTTP with httpx.

Each attempt resolves the host, checks every address (see ``addresses``), connects to a
checked address while keeping the real host name for the Host header, TLS SNI and the
certificate check, and never follows a redirect. One deadline covers it all (DNS,
connecting, sending, the answer's headers), so an attempt never outlives the lease its
worker holds; the answer's body is not read.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable

import certifi
import httpx

from lineside import __version__
from lineside.adapters.webhooks.addresses import IPAddress, literal_address, resolve
from lineside.adapters.webhooks.signing import signature_headers
from lineside.domain.webhooks import HTTP_GONE, WebhookTargetRefused, parse_target
from lineside.services.ports import Clock, SendResult, WebhookMessage

USER_AGENT = f"Lineside-Webhooks/{__version__}"
MAX_ERROR_LENGTH = 500

Lookup = Callable[[str, int], list[IPAddress]]


def _default_ssl_context() -> ssl.SSLContext:
    return ssl.create_default_context(cafile=certifi.where())


def _status_error(status: int) -> str | None:
    if 200 <= status < 300:
        return None
    if 300 <= status < 400:
        return f"The receiver answered {status} (a redirect); redirects are not followed."
    if status == HTTP_GONE:
        return "The receiver answered 410 Gone: the endpoint is disabled."
    return f"The receiver answered {status}."


class HttpxWebhookSender:
    def __init__(
        self,
        *,
        allow_private: bool,
        timeout_seconds: float,
        clock: Clock,
        lookup: Lookup | None = None,
    ) -> None:
        self._allow_private = allow_private
        self._timeout = timeout_seconds
        self._clock = clock
        self._lookup: Lookup = lookup or (
            lambda host, port: resolve(host, port, allow_private=self._allow_private)
        )
        self._ssl = _default_ssl_context()

    def check_target(self, url: str) -> None:
        target = parse_target(url)
        self._lookup(target.host, target.port)

    async def send(self, message: WebhookMessage) -> SendResult:
        started = time.monotonic()

        def result(status: int | None, error: str | None) -> SendResult:
            elapsed = round((time.monotonic() - started) * 1000)
            return SendResult(status, error[:MAX_ERROR_LENGTH] if error else None, elapsed)

        try:
            async with asyncio.timeout(self._timeout):
                status = await self._post(message)
        except WebhookTargetRefused as refused:
            return result(None, refused.detail)
        except TimeoutError:
            return result(None, f"No answer within {self._timeout:g} s.")
        except (httpx.HTTPError, OSError) as error:
            return result(None, f"{type(error).__name__}: {error}")
        return result(status, _status_error(status))

    async def _post(self, message: WebhookMessage) -> int:
        target = parse_target(message.url)
        url = httpx.URL(message.url)
        host = url.raw_host.decode("ascii")
        addresses = await asyncio.to_thread(self._lookup, host, target.port)
        headers = {
            **signature_headers(
                message.secret, message.message_id, int(self._clock().timestamp()), message.body
            ),
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "host": url.netloc.decode("ascii"),
        }
        # The connection goes to the address just checked; TLS still verifies the host name.
        extensions = {"sni_hostname": host} if target.scheme == "https" and not literal_address(host) else {}
        async with (
            httpx.AsyncClient(
                verify=self._ssl, trust_env=False, follow_redirects=False, timeout=self._timeout
            ) as client,
            client.stream(
                "POST",
                url.copy_with(host=str(addresses[0])),
                content=message.body,
                headers=headers,
                extensions=extensions,
            ) as response,
        ):
            return response.status_code
