"""Cursor pagination over UUIDv7 ids, which sort by creation time."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import Column, Row, Select

from lineside.domain.errors import InvalidInput
from lineside.domain.identifiers import is_uuid
from lineside.services.ports import Page


def encode_cursor(last_key: str) -> str:
    return base64.urlsafe_b64encode(last_key.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return base64.urlsafe_b64decode(padded.encode("ascii")).decode("ascii")
    except (binascii.Error, UnicodeError, ValueError):
        raise InvalidInput("The cursor is not one this server handed out.") from None


T = TypeVar("T")


def paged(
    query: Select[Any],
    key: Column[Any],
    cursor: str | None,
    limit: int,
    run: Callable[[Select[Any]], Sequence[Row[Any]]],
    convert: Callable[[Row[Any]], T],
    *,
    key_of: Callable[[Row[Any]], str] | None = None,
) -> Page[T]:
    if cursor is not None:
        query = query.where(key > _cursor_value(key, decode_cursor(cursor)))
    rows = run(query.order_by(key).limit(limit + 1))
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = None
    if more and rows:
        last = rows[-1]
        next_cursor = encode_cursor(key_of(last) if key_of else str(last._mapping[key.name]))
    return Page([convert(row) for row in rows], next_cursor)


def _cursor_value(key: Column[Any], after: str) -> str | int:
    if key.type.python_type is not int:
        if not is_uuid(after):
            raise InvalidInput("The cursor is not one this server handed out.")
        return after
    if not after.isdigit() or len(after) > 18:
        raise InvalidInput("The cursor is not one this server handed out.")
    return int(after)
