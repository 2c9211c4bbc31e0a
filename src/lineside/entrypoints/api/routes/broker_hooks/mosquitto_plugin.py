"""What Lineside's own Mosquitto plugin (``adapters/mqtt/mosquitto_plugin.c``) asks besides
mosquitto-go-auth's ``/user`` and ``/acl``, always with the hook secret:

- ``POST /broker/mosquitto/tick`` every recheck interval, ``text/plain``, one line per fact,
  fields URL-encoded and separated by a space::

      cursor 1234                        the last firmware event it was told about (absent at first)
      connected <client id> <proof>      each device connection it holds, and the proof it got at /user
      disconnected <client id>           each device that left since the last tick (not a takeover)

  answered ``200 text/plain``::

      cursor 1240                        remember this
      kick <client id>                   its credential no longer holds: cut it off
      publish <topic> <qos> <base64> retain   a firmware notice to deliver (and retain)

- ``POST /broker/mosquitto/arrivals`` (``text/plain``): the devices the plugin accepted itself
  (their own token or MQTT password, checked against the database with the server key)::

      arrived <client id> <proof>

  Each is marked connected, and so activated on its first connection; the answer is a tick's,
  ``kick`` lines for those whose credential changed since the plugin read it.

- ``POST /broker/mosquitto/provision`` (form: ``clientid``, ``payload``): a ``provision``
  client's request on ``/provision/request``. The answer's body is the response payload and
  ``X-Lineside-Topic`` its topic; the plugin sends it to that connection alone.

The plugin learns each connection's proof (the keyed hash of the secret it used, never the
secret) from the ``X-Lineside-Proof`` header of ``/user``, which Lineside adds only for a
caller with the hook secret, or computes it itself. Presence comes from ``/user`` and
``/arrivals`` (connected) and the tick (disconnected); revocation from comparing the proofs
with the devices' current ones.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from urllib.parse import quote, unquote

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from lineside.domain.mqtt import PROVISION_RESPONSE_TOPIC
from lineside.entrypoints.api.routes.broker_hooks.common import (
    application_of,
    hook_params,
    presence_of,
    require_hook_secret,
    text,
)
from lineside.services import firmware_notices
from lineside.services.mqtt_access import stale_proofs
from lineside.services.mqtt_provisioning import answer_provision_request

router = APIRouter(prefix="/broker/mosquitto")

TOPIC_HEADER = "X-Lineside-Topic"
FIRMWARE_QOS = 1
_TEXT = {"content": {"text/plain": {"schema": {"type": "string"}}}}


@dataclass
class Tick:
    """What one tick of the plugin says."""

    cursor: int | None = None
    connected: list[tuple[str, str]] = field(default_factory=list)
    disconnected: list[str] = field(default_factory=list)
    arrived: list[tuple[str, str]] = field(default_factory=list)


def parse_tick(body: str) -> Tick:
    """The tick's lines; a line that does not parse is skipped (a broker never gets a 500)."""
    tick = Tick()
    for line in body.splitlines():
        words = [unquote(word) for word in line.split(" ")]
        if any("\x00" in word for word in words):
            continue  # no MQTT client id holds one, and PostgreSQL text cannot
        match words:
            case ["cursor", number] if number.isascii() and number.isdecimal():
                tick.cursor = int(number)
            case ["connected", client_id, proof] if client_id and proof:
                tick.connected.append((client_id, proof))
            case ["disconnected", client_id] if client_id:
                tick.disconnected.append(client_id)
            case ["arrived", client_id, proof] if client_id and proof:
                tick.arrived.append((client_id, proof))
    return tick


@router.post(
    "/tick",
    response_class=Response,
    responses={200: {"description": "cursor, kick and publish lines (text/plain).", **_TEXT}},
)
async def tick(request: Request) -> Response:
    """Lineside's Mosquitto plugin, every recheck: who left, which connections to cut off, and
    the firmware notices to publish (needs the hook secret)."""
    require_hook_secret(request)
    said = parse_tick((await request.body()).decode("utf-8", errors="replace"))
    presence = presence_of(request)
    # Left and came back within one interval: the connection listed now is the truth.
    connected_now = {client_id for client_id, _ in said.connected}
    for client_id in said.disconnected:
        if client_id not in connected_now:
            presence.disconnected(client_id)
    services = application_of(request).services
    stale = await run_in_threadpool(stale_proofs, services, said.connected)
    for client_id in stale:  # the plugin cuts these off and reports no departure for them
        presence.disconnected(client_id)
    notices: list[firmware_notices.FirmwareNotice] = []
    if said.cursor is None:  # the plugin just started: from now on, none replayed
        cursor = await run_in_threadpool(firmware_notices.latest_cursor, services)
    else:
        cursor, notices = await run_in_threadpool(firmware_notices.notices_after, services, said.cursor)
    lines = [f"cursor {cursor}", *_kicks(stale)]
    for notice in notices:
        payload = base64.b64encode(json.dumps(notice.payload).encode()).decode("ascii")
        # Retained, as the embedded broker does: a device that subscribes later hears the latest.
        lines.append(f"publish {quote(notice.topic, safe='')} {FIRMWARE_QOS} {payload} retain")
    return _lines(lines)


@router.post(
    "/arrivals",
    response_class=Response,
    responses={200: {"description": "kick lines (text/plain).", **_TEXT}},
)
async def arrivals(request: Request) -> Response:
    """Lineside's Mosquitto plugin: the devices it accepted itself since it last said, to mark
    connected (and activate); those whose credential changed meanwhile are cut off (needs the
    hook secret)."""
    require_hook_secret(request)
    said = parse_tick((await request.body()).decode("utf-8", errors="replace"))
    stale = await run_in_threadpool(stale_proofs, application_of(request).services, said.arrived)
    presence = presence_of(request)
    for client_id, _ in said.arrived:
        if client_id not in stale:
            presence.connected(client_id)
    return _lines(_kicks(stale))


def _kicks(stale: set[str]) -> list[str]:
    """The lines telling the plugin to cut these connections off."""
    return [f"kick {quote(client_id, safe='')}" for client_id in sorted(stale)]


def _lines(lines: list[str]) -> Response:
    """A plugin answer: one line per fact, each ending in a newline."""
    return Response("".join(f"{line}\n" for line in lines), media_type="text/plain")


@router.post(
    "/provision",
    response_class=Response,
    responses={200: {"description": "The answer's payload, for that connection alone.", **_TEXT}},
)
async def provision(request: Request) -> Response:
    """Lineside's Mosquitto plugin: a ``provision`` client's request, answered with the
    payload to send to that connection alone (needs the hook secret)."""
    require_hook_secret(request)
    params = await hook_params(request)
    payload = (text(params, "payload") or "").encode("utf-8")
    answer = await run_in_threadpool(answer_provision_request, application_of(request).services, payload)
    return Response(
        json.dumps(answer),
        media_type="application/json",
        headers={TOPIC_HEADER: PROVISION_RESPONSE_TOPIC},
    )
