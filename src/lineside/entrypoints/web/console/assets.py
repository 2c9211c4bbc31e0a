"""The console's one script, served from the package: no CDN, nothing fetched at run time."""

from __future__ import annotations

import functools
from importlib import resources

from fastapi import APIRouter
from fastapi.responses import Response

router = APIRouter(prefix="/console/static", include_in_schema=False)
SCRIPT = "console.js"


@functools.cache  # read once per process, on first use
def _script() -> bytes:
    return resources.files("lineside.entrypoints.web").joinpath("static", SCRIPT).read_bytes()


@router.get(f"/{SCRIPT}")
def console_script() -> Response:
    return Response(
        _script(),
        media_type="text/javascript",
        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )
