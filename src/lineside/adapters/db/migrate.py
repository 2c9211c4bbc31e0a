"""Apply Alembic migrations from inside the program (``lineside db upgrade``, ``serve``).

Alembic costs most of a second to import, so commands first compare the database's
revision with HEAD_REVISION and only load Alembic when there is something to do.
``tests/integration/test_migrations.py`` keeps HEAD_REVISION equal to Alembic's head.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect, text

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
HEAD_REVISION = "0011"


def alembic_config() -> Config:
    from alembic.config import Config  # noqa: PLC0415 - see the module docstring

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    return config


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        revision: str | None = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
        return revision


def upgrade_database(engine: Engine, revision: str = "head") -> None:
    if revision == "head" and current_revision(engine) == HEAD_REVISION:
        return
    from alembic import command  # noqa: PLC0415 - see the module docstring

    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def make_revision(engine: Engine, message: str) -> None:
    """For developers: autogenerate a migration from the difference with tables.py."""
    from alembic import command  # noqa: PLC0415 - see the module docstring

    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.revision(config, message=message, autogenerate=True)
