"""Cursor pagination over UUIDv7 ids (which sort by creation time) or event sequence numbers."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import Column, Row, Select

from lineside.domain.errors import InvalidInput
from lineside.services.ports import Page

_HEX_UUID = re.compile(r"[0-9a-f]{32}\Z")
MAX_SEQUENCE_DIGITS = 18


def encode_cursor(last_key: str) -> str:
    """The key a page ended at, as the next page's cursor: a UUID's 32 hex digits, or a
    sequence number's decimal digits (``api.constraints`` documents both patterns)."""
    return uuid.UUID(last_key).hex if not last_key.isdigit() else last_key


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
    newest_first: bool = False,
) -> Page[T]:
    if cursor is not None:
        after = cursor_value(key, cursor)
        query = query.where(key < after if newest_first else key > after)
    rows = run(query.order_by(key.desc() if newest_first else key).limit(limit + 1))
    return page_of_rows(rows, limit, key.name, convert, key_of=key_of)


def page_of_rows(
    rows: Sequence[Row[Any]],
    limit: int,
    key_name: str,
    convert: Callable[[Row[Any]], T],
    *,
    key_of: Callable[[Row[Any]], str] | None = None,
) -> Page[T]:
    """A page of the first ``limit`` rows of ``limit + 1`` read (one more says there is a next)."""
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = None
    if more and rows:
        last = rows[-1]
        next_cursor = encode_cursor(key_of(last) if key_of else str(last._mapping[key_name]))
    return Page([convert(row) for row in rows], next_cursor)


def cursor_value(key: Column[Any], after: str) -> str | int:
    if key.type.python_type is not int:
        if not _HEX_UUID.match(after):
            raise InvalidInput("The cursor is not one this server handed out.")
        return str(uuid.UUID(after))
    if not after.isdigit() or len(after) > MAX_SEQUENCE_DIGITS:
        raise InvalidInput("The cursor is not one this server handed out.")
    return int(after)
