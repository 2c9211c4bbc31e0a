"""Backups of a whole Lineside: the database and the data directory, in one private archive.

The database alone is not enough: every stored secret is a keyed hash under
``DATA_DIR/server.key``, and product CAs sign with keys in ``DATA_DIR/ca/``. A backup
holds both, so it is as secret as they are: the archive is written 0600.

Archive layout (``.tar.gz``)::

    backup.json          what, when, which backend, schema revision
    database.sqlite3     SQLite: a consistent snapshot (SQLite's online backup API)
    database.pgdump      PostgreSQL: ``pg_dump --format=custom`` (restored by pg_restore)
    data/...             the data directory (server key, CA keys, firmware, MQTT TLS key)
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import create_engine
from sqlalchemy.engine import URL, make_url

from lineside.adapters.db.migrate import current_revision

MANIFEST = "backup.json"
SQLITE_MEMBER = "database.sqlite3"
POSTGRES_MEMBER = "database.pgdump"
DATA_MEMBER = "data"
# Scratch and per-run files of the data directory that a restore does not need.
_SKIPPED = {"tmp"}
FORMAT_VERSION = 1


class BackupError(Exception):
    """Why a backup or restore cannot be done, in one sentence."""


@dataclass(frozen=True)
class BackupSummary:
    backend: str
    schema_revision: str | None
    created_at: str
    data_files: int


def write_backup(
    out: BinaryIO, database_url: str, data_dir: Path, schema_revision: str | None
) -> BackupSummary:
    """Write the archive to ``out`` (the caller syncs it and moves it into place)."""
    url = make_url(database_url)
    backend = url.get_backend_name()
    with tempfile.TemporaryDirectory(prefix="lineside-backup-") as scratch:
        if backend == "sqlite":
            member, dump = SQLITE_MEMBER, _sqlite_snapshot(url, Path(scratch))
        elif backend == "postgresql":
            member, dump = POSTGRES_MEMBER, _pg_dump(url, Path(scratch))
        else:
            raise BackupError(f"backups of {backend} databases are not supported")
        summary = BackupSummary(
            backend=backend,
            schema_revision=schema_revision,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            data_files=sum(1 for _ in _data_files(data_dir)),
        )
        with tarfile.open(fileobj=out, mode="w:gz") as archive:
            manifest = json.dumps({"format": FORMAT_VERSION, **summary.__dict__}, indent=2).encode()
            _add_bytes(archive, MANIFEST, manifest)
            archive.add(dump, arcname=member)
            for path in _data_files(data_dir):
                archive.add(path, arcname=f"{DATA_MEMBER}/{path.relative_to(data_dir)}", recursive=False)
    return summary


def _data_files(data_dir: Path) -> Iterator[Path]:
    if not data_dir.is_dir():
        raise BackupError(f"the data directory {data_dir} does not exist")
    for path in sorted(data_dir.rglob("*")):
        relative = path.relative_to(data_dir)
        if relative.parts[0] in _SKIPPED or not path.is_file():
            continue
        yield path


def _add_bytes(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o600
    info.mtime = int(datetime.now(UTC).timestamp())
    archive.addfile(info, fileobj=_BytesReader(data))


class _BytesReader:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._offset = 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._data) if size < 0 else self._offset + size
        chunk = self._data[self._offset : end]
        self._offset += len(chunk)
        return chunk


def _sqlite_snapshot(url: URL, scratch: Path) -> Path:
    """A consistent copy while the server keeps writing (WAL readers never block writers)."""
    source_path = Path(url.database or "")
    if not source_path.is_file():
        raise BackupError(f"the SQLite database {source_path} does not exist")
    target = scratch / SQLITE_MEMBER
    source = sqlite3.connect(f"file:{source_path}?mode=ro", uri=True)
    try:
        copy = sqlite3.connect(target)
        try:
            source.backup(copy)
        finally:
            copy.close()
    finally:
        source.close()
    os.chmod(target, 0o600)
    return target


def _pg_dump(url: URL, scratch: Path) -> Path:
    tool = shutil.which("pg_dump")
    if tool is None:
        raise BackupError(
            "pg_dump is not installed: install PostgreSQL's client tools (or back the database up "
            "with pg_dump yourself and keep a copy of the data directory beside it)"
        )
    target = scratch / POSTGRES_MEMBER
    _run([tool, "--format=custom", "--no-owner", "--file", str(target), *_libpq_arguments(url)], url)
    return target


def _libpq_arguments(url: URL) -> list[str]:
    arguments = ["--dbname", url.database or "postgres"]
    if url.host:
        arguments += ["--host", url.host]
    if url.port:
        arguments += ["--port", str(url.port)]
    if url.username:
        arguments += ["--username", url.username]
    return arguments


def _run(command: list[str], url: URL) -> None:
    environment = {**os.environ}
    if url.password:
        environment["PGPASSWORD"] = url.password  # never on the command line, where ps shows it
    result = subprocess.run(command, capture_output=True, text=True, env=environment, check=False)  # noqa: S603
    if result.returncode != 0:
        last_line = (result.stderr.strip().splitlines() or ["failed"])[-1]
        raise BackupError(f"{Path(command[0]).name}: {last_line}")


# -- restore -------------------------------------------------------------------------------


def read_manifest(archive_path: Path) -> dict[str, object]:
    with _opened(archive_path) as archive:
        member = archive.extractfile(MANIFEST)
        if member is None:
            raise BackupError(f"{archive_path} is not a Lineside backup (no {MANIFEST})")
        manifest: dict[str, object] = json.loads(member.read())
    return manifest


def restore_backup(archive_path: Path, database_url: str, data_dir: Path, *, replace: bool) -> BackupSummary:
    """Put the archive's data directory and database in place. Without ``replace``, refuses
    to touch a data directory that holds a server key or a database that holds a schema."""
    manifest = read_manifest(archive_path)
    url = make_url(database_url)
    backend = url.get_backend_name()
    if manifest.get("backend") != backend:
        raise BackupError(
            f"the backup is of a {manifest.get('backend')} database, LINESIDE_DATABASE_URL is {backend}"
        )
    if (data_dir / "server.key").exists() and not replace:
        raise BackupError(f"{data_dir} already holds a server key: pass --force to replace it")
    with tempfile.TemporaryDirectory(prefix="lineside-restore-") as scratch, _opened(archive_path) as archive:
        archive.extractall(scratch, filter="data")
        unpacked = Path(scratch)
        if backend == "sqlite":
            _restore_sqlite(unpacked / SQLITE_MEMBER, url, replace=replace)
        else:
            _restore_postgres(unpacked / POSTGRES_MEMBER, url, replace=replace)
        files = _restore_data_dir(unpacked / DATA_MEMBER, data_dir)
    return BackupSummary(
        backend=backend,
        schema_revision=str(manifest.get("schema_revision")),
        created_at=str(manifest.get("created_at")),
        data_files=files,
    )


@contextmanager
def _opened(archive_path: Path) -> Iterator[tarfile.TarFile]:
    try:
        with tarfile.open(archive_path, mode="r:gz") as archive:
            yield archive
    except (tarfile.TarError, OSError, EOFError) as error:
        raise BackupError(f"{archive_path} cannot be read as a backup: {error}") from None


def _restore_sqlite(snapshot: Path, url: URL, *, replace: bool) -> None:
    target = Path(url.database or "")
    if target.exists() and not replace:
        raise BackupError(f"{target} already exists: pass --force to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.restoring")
    shutil.copyfile(snapshot, staging)
    os.chmod(staging, 0o600)
    for stale in (target.with_name(target.name + "-wal"), target.with_name(target.name + "-shm")):
        stale.unlink(missing_ok=True)
    os.replace(staging, target)


def _restore_postgres(dump: Path, url: URL, *, replace: bool) -> None:
    tool = shutil.which("pg_restore")
    if tool is None:
        raise BackupError("pg_restore is not installed: install PostgreSQL's client tools")
    if not replace and _holds_a_schema(url):
        raise BackupError(
            f"the database {url.database} already holds Lineside's tables: pass --force to replace them"
        )
    options = ["--clean", "--if-exists"] if replace else []
    _run([tool, "--no-owner", "--exit-on-error", *options, *_libpq_arguments(url), str(dump)], url)


def _holds_a_schema(url: URL) -> bool:
    engine = create_engine(url)
    try:
        return current_revision(engine) is not None
    finally:
        engine.dispose()


def _restore_data_dir(unpacked: Path, data_dir: Path) -> int:
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)
    count = 0
    for path in sorted(unpacked.rglob("*")) if unpacked.is_dir() else []:
        target = data_dir / path.relative_to(unpacked)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
        count += 1
    return count
