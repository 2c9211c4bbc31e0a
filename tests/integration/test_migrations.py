"""The migrations build exactly the schema tables.py describes, on every backend, once."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.engine import make_url

from lineside.adapters.db.engine import create_database_engine
from lineside.adapters.db.migrate import HEAD_REVISION, alembic_config, upgrade_database
from lineside.adapters.db.tables import metadata
from tests.conftest import BACKENDS, _postgres_unavailable, postgres_admin_url


@pytest.fixture
def fresh_sqlite(tmp_path: Path) -> Iterator[str]:
    yield f"sqlite:///{tmp_path / 'fresh.db'}"


@pytest.fixture
def fresh_postgres() -> Iterator[str]:
    admin_url = postgres_admin_url()
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"lineside_mig_{secrets.token_hex(4)}"
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as error:
        admin.dispose()
        _postgres_unavailable(f"{make_url(admin_url).render_as_string()}: {error.__class__.__name__}")
    yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=BACKENDS)
def fresh_engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    url: str = request.getfixturevalue(f"fresh_{request.param}")
    engine = create_database_engine(url)
    yield engine
    engine.dispose()


def differences(engine: Engine) -> list[Any]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        found: list[Any] = compare_metadata(context, metadata)
    return found


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision(engine: Engine) -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def schema_snapshot(engine: Engine) -> dict[str, Any]:
    inspector = inspect(engine)
    return {
        table: (
            [
                (column["name"], str(column["type"]), column["nullable"])
                for column in inspector.get_columns(table)
            ],
            sorted(index["name"] or "" for index in inspector.get_indexes(table)),
            sorted(constraint["name"] or "" for constraint in inspector.get_unique_constraints(table)),
        )
        for table in sorted(inspector.get_table_names())
    }


def test_a_fresh_database_starts_empty(fresh_engine: Engine) -> None:
    assert current_revision(fresh_engine) is None
    assert differences(fresh_engine) != []  # the comparison does see a missing schema


def test_upgrading_a_fresh_database_to_head_builds_exactly_the_schema_of_tables_py(
    fresh_engine: Engine,
) -> None:
    upgrade_database(fresh_engine)

    assert current_revision(fresh_engine) == head_revision(fresh_engine)
    assert differences(fresh_engine) == []
    assert set(metadata.tables) <= set(inspect(fresh_engine).get_table_names())


def test_upgrading_twice_changes_nothing(fresh_engine: Engine) -> None:
    upgrade_database(fresh_engine)
    before = schema_snapshot(fresh_engine)

    upgrade_database(fresh_engine)

    assert current_revision(fresh_engine) == head_revision(fresh_engine)
    assert schema_snapshot(fresh_engine) == before
    assert differences(fresh_engine) == []


def test_there_is_one_head_so_migrations_never_branch(fresh_engine: Engine) -> None:
    assert len(ScriptDirectory.from_config(alembic_config()).get_heads()) == 1


def test_the_head_revision_the_program_knows_is_alembics_head(fresh_engine: Engine) -> None:
    # Commands skip importing Alembic when the database is at HEAD_REVISION: it must be the head.
    assert head_revision(fresh_engine) == HEAD_REVISION
