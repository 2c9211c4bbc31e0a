"""Engines for SQLite (the laptop default) and PostgreSQL (at scale).

SQLite gets WAL so readers never wait for a writer, a busy timeout instead of instant
"database is locked" errors, and ``BEGIN IMMEDIATE`` for writing transactions so two writers
queue at the start instead of failing at their first write; within one process they
queue on a lock before that (``sqlite_writer_lock``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import threading
import time
import weakref
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.dialects.sqlite.base import SQLiteCompiler
from sqlalchemy.engine import make_url
from sqlalchemy.sql.expression import FromClause

WRITE_OPTION = "lineside_write"
AUTOCOMMIT_OPTION = "lineside_autocommit"
SQLITE_BUSY_TIMEOUT_MS = 30_000
SQLITE_CACHE_KIB = 65_536
POOL_SIZE = 40  # the size of Starlette's threadpool
PRIVATE_FILE_MODE = 0o600


def create_database_engine(url: str, *, echo: bool = False) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database not in (None, "", ":memory:"):
            _keep_private(Path(parsed.database))
        # As many pooled connections as the server's threadpool has threads: opening a
        # SQLite connection (and its PRAGMAs) per request costs more than the query.
        engine = create_engine(
            url,
            echo=echo,
            connect_args={"check_same_thread": False},
            pool_size=POOL_SIZE,
            max_overflow=POOL_SIZE,
        )
        _configure_sqlite(engine, in_memory=parsed.database in (None, "", ":memory:"))
        engine.dialect.statement_compiler = _SQLiteCompilerWithIndexHints
        in_memory = parsed.database in (None, "", ":memory:")
        lock_file = None if in_memory else Path(f"{parsed.database}-writer.lock")
        _WRITER_LOCKS[engine] = SqliteWriterLock(lock_file)
        return engine
    # No pre-ping (a round trip per checkout); connections are recycled instead, and a
    # dead one fails one request rather than slowing every request.
    return create_engine(url, echo=echo, pool_recycle=1800, pool_size=POOL_SIZE, max_overflow=POOL_SIZE)


class _SQLiteCompilerWithIndexHints(SQLiteCompiler):
    """Writes ``select().with_hint(table, "INDEXED BY ix_...", "sqlite")``, which SQLAlchemy's
    SQLite compiler drops: without statistics SQLite's planner cannot tell two equally shaped
    indexes apart, and a list must read its page through the one that fits its filter
    (adapters.db.pages)."""

    def get_from_hint_text(self, table: FromClause, text: str | None) -> str | None:
        return text


def _keep_private(path: Path) -> None:
    """The database holds every keyed hash and the people's password hashes: owner-only, like
    the server key. SQLite creates its -wal and -shm files with the database file's mode, so
    a database created 0600 here keeps them 0600; one made before is tightened."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(FileNotFoundError, PermissionError):
            if stat.S_IMODE(file.stat().st_mode) & 0o077:
                file.chmod(PRIVATE_FILE_MODE)


# SQLite has one writer at a time. Writers that wait for it in SQLite's busy handler sleep
# in steps of up to 100 ms, however soon the lock frees (p99 over a second under a factory
# line's load), so writers queue on a lock of their own instead: threads of one process on
# a reentrant lock, and processes (the server's workers, the CLI) on an flock of a file
# beside the database, which the kernel frees if a process dies. Only writers that do not
# take it (another program) meet the busy handler.
class SqliteWriterLock:
    """Held by a writing transaction from BEGIN to its end. Reentrant within a thread: a
    thread that holds it may open another unit of work (which then waits on SQLite, as it
    would without this lock)."""

    POLL_SECONDS = (0.0002, 0.0005, 0.001)  # waiting for another process: quick, then 1 ms

    def __init__(self, lock_file: Path | None) -> None:
        self._threads = threading.RLock()
        self._lock_file = lock_file
        self._fd: int | None = None
        self._pid = os.getpid()
        self._depth = 0  # how deep the holding thread is; the flock is taken at depth 0 only

    def acquire(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        if not self._threads.acquire(timeout=timeout):
            return False
        if self._depth == 0 and self._lock_file is not None and not self._lock_other_processes(deadline):
            self._threads.release()
            return False
        self._depth += 1
        return True

    def release(self) -> None:
        self._depth -= 1
        if self._depth == 0 and self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._threads.release()

    def _lock_other_processes(self, deadline: float) -> bool:
        if self._fd is None or self._pid != os.getpid():
            # A forked child opens its own: an flock belongs to the open file, which a child
            # inherited from its parent would share with it.
            assert self._lock_file is not None
            self._fd = os.open(self._lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE_MODE)
            self._pid = os.getpid()
        pauses = iter(self.POLL_SECONDS)
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return False
                # At most one thread per process polls here (the others wait on _threads).
                time.sleep(next(pauses, self.POLL_SECONDS[-1]))


_WRITER_LOCKS: weakref.WeakKeyDictionary[Engine, SqliteWriterLock] = weakref.WeakKeyDictionary()


def sqlite_writer_lock(engine: Engine) -> SqliteWriterLock | None:
    """The lock a writing transaction of ``engine`` holds from BEGIN to its end; None for
    PostgreSQL (and for engines made elsewhere), whose writers wait on rows, not the file."""
    return _WRITER_LOCKS.get(engine)


def _configure_sqlite(engine: Engine, *, in_memory: bool) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transactions out of pysqlite's hands so BEGIN IMMEDIATE is ours to send.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if not in_memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Connection) -> None:
        options = connection.get_execution_options()
        if options.get(AUTOCOMMIT_OPTION, False):
            return
        connection.exec_driver_sql("BEGIN IMMEDIATE" if options.get(WRITE_OPTION, True) else "BEGIN")
