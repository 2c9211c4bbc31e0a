"""Pages that cost the page, however many rows the lists hold.

A list shows what an organization's subtree may see, ordered by a key (time-ordered ids, or
event sequence numbers). Asked as one ``organization_id IN (...) OR ...`` query, a database
reads every visible row and sorts them to return a hundred. Asked as a UNION ALL of
*branches*, each an equality on one organization read through an index that ends in the
key, every branch stops after a page, and the outer sort orders at most a page per branch.

SQLite's planner has no statistics to choose between two indexes of the same shape, so each
branch names its index (``INDEXED BY``, on SQLite only; PostgreSQL's planner chooses with
its statistics). ``tests/integration/test_page_plans.py`` checks what each list reads.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Column, Connection, Row, Select, Table, select, union_all
from sqlalchemy.sql.elements import ColumnElement

from lineside.adapters.db import tables as t
from lineside.adapters.db.paging import cursor_value, page_of_rows
from lineside.services.ports import Page

# A subtree of more organizations than this is listed with one query (all its rows read):
# a UNION of thousands of branches costs more to plan than it saves.
MAX_BRANCH_ORGANIZATIONS = 100

T = TypeVar("T")


@dataclass(frozen=True)
class Branch:
    """The rows matching ``where``, read in key order through ``index`` (named for SQLite)."""

    where: ColumnElement[bool]
    index: str | None = None


def subtree_ids(connection: Connection, within: str) -> list[str]:
    """The ids of the organization at ``within`` and of every organization below it."""
    o = t.organizations.c
    return list(connection.execute(select(o.id).where(o.path.startswith(within))).scalars())


def branch_page(
    connection: Connection,
    table: Table,
    key: Column[Any],
    branches: Sequence[Branch],
    *,
    cursor: str | None,
    limit: int,
    convert: Callable[[Row[Any]], T],
    newest_first: bool = False,
) -> Page[T]:
    """The page of rows of every branch together, in key order after ``cursor`` (or in
    reverse key order before it: the same indexes, read backwards)."""
    if not branches:
        return Page([], None)
    after = cursor_value(key, cursor) if cursor is not None else None
    scans = [_scan(table, key, branch, after, limit, newest_first) for branch in branches]
    if len(scans) == 1:
        query = scans[0]
    else:
        # SQLite allows ORDER BY and LIMIT in a compound SELECT's parts only in subqueries.
        merged = union_all(*(select(scan.subquery()) for scan in scans)).subquery()
        query = select(merged).order_by(ordered(merged.c[key.name], newest_first)).limit(limit + 1)
    return page_of_rows(connection.execute(query).all(), limit, key.name, convert)


def ordered(key: ColumnElement[Any], newest_first: bool) -> ColumnElement[Any]:
    return key.desc() if newest_first else key


def _scan(
    table: Table, key: Column[Any], branch: Branch, after: Any, limit: int, newest_first: bool
) -> Select[Any]:
    scan = select(table).where(branch.where)
    if after is not None:
        scan = scan.where(key < after if newest_first else key > after)
    if branch.index is not None:
        scan = scan.with_hint(table, f"INDEXED BY {branch.index}", "sqlite")
    return scan.order_by(ordered(key, newest_first)).limit(limit + 1)
