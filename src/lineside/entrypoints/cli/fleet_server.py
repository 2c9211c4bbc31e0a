"""What the simulator asks the server: which broker to use, and whether it saw the devices.

A simulator that picks a broker itself can connect to the wrong one (a Mosquitto on 1883
that accepts anyone) and report every device connected while the server saw none. So the
broker comes from the server (``mqtt_url`` in ``GET /device/v1/me``), and a device counts as
connected only once the server has recorded it (its ``last_seen_at`` is after the run began).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import httpx

from lineside.entrypoints.cli.reaching import cannot_reach

CONFIRM_DEADLINE_SECONDS = 15.0
POLL_SECONDS = 0.2


class FleetServerError(Exception):
    """One sentence saying what the server would not tell, or how to get past it."""


@dataclass(frozen=True)
class Broker:
    host: str
    port: int
    server_time: datetime  # the server's clock when asked: seen-since for the confirmation


def advertised_broker(server: str, token: str) -> Broker:
    """The plain MQTT listener the server names, and the server's time now."""
    me, server_time = _me(server, token)
    url = me.get("mqtt_url")
    if not isinstance(url, str) or not url:
        raise FleetServerError(
            "The server names no MQTT broker (LINESIDE_MQTT_ENABLED=0 and no LINESIDE_MQTT_PUBLIC_URL): "
            "give --mqtt-host and --mqtt-port."
        )
    parts = urlsplit(url)
    if parts.scheme != "mqtt" or not parts.hostname:
        raise FleetServerError(
            f"The server's broker is {url}; the simulator speaks plain MQTT: "
            "give --mqtt-host and --mqtt-port."
        )
    return Broker(parts.hostname, parts.port or 1883, server_time)


def server_time(server: str, token: str) -> datetime:
    """The server's clock (to the second before), for ``confirmed``'s ``since``."""
    return _me(server, token)[1]


def confirmed(
    server: str, tokens: Iterable[str], since: datetime, wait: float = CONFIRM_DEADLINE_SECONDS
) -> int:
    """How many of the devices behind ``tokens`` the server recorded as seen since ``since``
    (waiting up to ``wait`` seconds for its presence writes)."""
    waiting = list(tokens)
    seen = 0
    deadline = time.monotonic() + wait
    with httpx.Client(base_url=server, timeout=30.0) as http:
        while waiting:
            still = [token for token in waiting if not _seen_since(http, token, since)]
            seen += len(waiting) - len(still)
            waiting = still
            if not waiting or time.monotonic() > deadline:
                break
            time.sleep(POLL_SECONDS)  # the server writes presence every LINESIDE_PRESENCE_FLUSH_SECONDS
    return seen


def _seen_since(http: httpx.Client, token: str, since: datetime) -> bool:
    answer = http.get("/device/v1/me", headers={"Authorization": f"Bearer {token}"})
    if answer.status_code != 200:
        return False
    last_seen = answer.json().get("last_seen_at")
    return last_seen is not None and datetime.fromisoformat(last_seen.replace("Z", "+00:00")) >= since


def _me(server: str, token: str) -> tuple[dict[str, object], datetime]:
    try:
        answer = httpx.get(f"{server.rstrip('/')}/device/v1/me", headers={"Authorization": f"Bearer {token}"})
    except httpx.HTTPError as error:
        raise FleetServerError(cannot_reach(server, error)) from None
    if answer.status_code != 200:
        raise FleetServerError(f"The server refused a device's token ({answer.status_code}).")
    date = answer.headers.get("date")
    now = parsedate_to_datetime(date) if date else datetime.now(UTC)
    # The Date header has whole seconds: go back one so a connection in this second counts.
    return dict(answer.json()), now - timedelta(seconds=1)
