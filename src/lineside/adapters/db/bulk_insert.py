"""Many rows into one table, straight to the driver: the fast path of the batch writes
(defining 100,000 devices, a presence flush's events, a station's synced ledger).

SQLAlchemy's executemany processes every value of every row in Python and, on PostgreSQL,
still sends a statement per row; here the caller hands plain tuples already in the form the
database stores, and they go by ``COPY`` on PostgreSQL and by one executemany on SQLite, as
an iterator (never all in memory). The driver's IntegrityError is
wrapped as SQLAlchemy's would be, so the unit of work still answers a unique index's refusal
as a Conflict.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.types import TypeEngine


def insert_rows(
    connection: Connection, table: str, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]
) -> None:
    """Insert ``rows`` (tuples in ``columns`` order) into ``table``, in order."""
    driver = connection.dialect.loaded_dbapi
    try:
        if connection.dialect.name == "postgresql":
            _copy(connection, table, columns, rows)
        else:
            _executemany(connection, table, columns, rows)
    except driver.IntegrityError as error:
        raise IntegrityError(f"INSERT INTO {table}", None, error) from error


def _copy(
    connection: Connection, table: str, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]
) -> None:
    raw = connection.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cursor, cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _executemany(
    connection: Connection, table: str, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]
) -> None:
    placeholders = ", ".join("?" for _ in columns)
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})"  # noqa: S608 (our names)
    cursor = connection.connection.cursor()
    try:
        cursor.executemany(sql, rows)  # type: ignore[arg-type]
    finally:
        cursor.close()


def bind_processor(type_: TypeEngine[Any], dialect: Dialect) -> Callable[[Any], Any]:
    """How SQLAlchemy turns a value into what ``dialect`` stores for a column of ``type_`` (a
    time's UTC text on SQLite, say), for values that bypass its binding."""
    processor = type_.dialect_impl(dialect).bind_processor(dialect)
    return processor if processor is not None else _unchanged


def _unchanged(value: Any) -> Any:
    return value
