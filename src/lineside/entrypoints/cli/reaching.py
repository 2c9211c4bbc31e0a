"""One wording for every CLI command that talks to a server over HTTP and cannot reach it."""

from __future__ import annotations

import httpx


def cannot_reach(server: str, error: httpx.HTTPError) -> str:
    """What to tell the person: a refused connection most often means no server runs there."""
    if isinstance(error, httpx.ConnectError):
        return f"Cannot connect to {server}: is the server running (and is --server right)?"
    if isinstance(error, httpx.TimeoutException):
        return f"{server} did not answer in time."
    return f"Talking to {server} failed: {error or error.__class__.__name__}"
