"""The SQLite database holds every keyed hash and password hash: it and its WAL and shared
memory files are the owner's alone, like the server key."""

from __future__ import annotations

import stat
from pathlib import Path

from sqlalchemy import text

from lineside.bootstrap import bootstrap
from lineside.services.organizations import create_organization
from lineside.settings import Settings


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_sqlite_database_and_its_wal_and_shm_files_are_owner_only(tmp_path: Path) -> None:
    database = tmp_path / "db" / "lineside.db"
    settings = Settings(database_url=f"sqlite:///{database}", data_dir=tmp_path / "data", _env_file=None)
    application = bootstrap(settings, migrate=True)
    try:
        create_organization(application.services, "files")
        with application.engine.connect() as connection:  # keeps -wal and -shm open
            connection.execute(text("SELECT 1"))
            files = [database, database.with_name("lineside.db-wal"), database.with_name("lineside.db-shm")]
            assert all(file.exists() for file in files)
            assert {file.name: mode(file) for file in files} == {file.name: 0o600 for file in files}
    finally:
        application.close()
    assert mode(settings.data_dir / "server.key") == 0o600


def test_a_database_made_readable_by_others_is_tightened_on_start(tmp_path: Path) -> None:
    database = tmp_path / "lineside.db"
    settings = Settings(database_url=f"sqlite:///{database}", data_dir=tmp_path / "data", _env_file=None)
    bootstrap(settings, migrate=True).close()
    database.chmod(0o644)

    bootstrap(settings).close()

    assert mode(database) == 0o600
