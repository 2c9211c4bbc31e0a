"""Reading request bodies that a route parses itself (several content types on one route)."""

from __future__ import annotations

from fastapi import Request
from pydantic import ValidationError

from lineside.domain.errors import InvalidInput


def media_type(request: Request) -> str:
    """The request's content type without parameters, lower-cased ("" when absent)."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def csv_text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("The CSV must be UTF-8.") from None


def invalid(error: ValidationError) -> InvalidInput:
    """One readable sentence per problem pydantic found, as an InvalidInput to raise."""
    return InvalidInput(
        "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in error.errors())
    )
