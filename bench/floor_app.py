"""The floor for ``GET /device/v1/me``: a bare Starlette app doing the same work, no more.

It hashes the bearer token with the server's key (HMAC-SHA-256, as Lineside does), finds the
device by that hash with one indexed query on Lineside's own database, and answers the same
JSON. No framework beyond Starlette, no ORM, no middleware, one driver connection per worker
process, the query run on the event loop (as Lineside's route does). ``bench/floors.py``
starts it with uvicorn beside ``lineside serve`` and drives both with the same client.

Configured by FLOOR_DATABASE_URL (sqlite:///path or postgresql+psycopg://...) and
FLOOR_SERVER_KEY_FILE.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import sqlite3
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

QUERY = "SELECT id, product_id, serial_number, state, online, last_seen_at FROM devices WHERE token_hash = {}"
_state: dict[str, Any] = {}


def _connect() -> tuple[Any, str]:
    url = os.environ["FLOOR_DATABASE_URL"]
    if url.startswith("sqlite:///"):
        return sqlite3.connect(url.removeprefix("sqlite:///"), check_same_thread=False), QUERY.format("?")
    import psycopg  # noqa: PLC0415 - only the PostgreSQL floor needs it

    connection = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)
    return connection, QUERY.format("%s")


def _key() -> bytes:
    return bytes.fromhex(
        Path(os.environ["FLOOR_SERVER_KEY_FILE"]).read_text().strip()
    )  # as Lineside keeps it


async def me(request: Request) -> Response:
    if "connection" not in _state:
        _state["connection"], _state["query"] = _connect()
        _state["key"] = _key()
    token = request.headers.get("authorization", "").removeprefix("Bearer ")
    token_hash = hmac.new(_state["key"], token.encode(), hashlib.sha256).hexdigest()
    row = _state["connection"].execute(_state["query"], (token_hash,)).fetchone()
    if row is None:
        return JSONResponse({"detail": "unknown token"}, status_code=401)
    device_id, product_id, serial_number, state, online, last_seen_at = row
    return JSONResponse(
        {
            "id": str(device_id),
            "product_id": str(product_id),
            "serial_number": serial_number,
            "state": state,
            "online": bool(online),
            "last_seen_at": str(last_seen_at) if last_seen_at else None,
        }
    )


async def healthz(_request: Request) -> Response:
    return JSONResponse({"status": "ok"})


app = Starlette(routes=[Route("/device/v1/me", me), Route("/healthz", healthz)])
