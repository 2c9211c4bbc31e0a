"""What the Mosquitto plugin is told to open and run to check a device's password itself
(``adapters/db/plugin_queries``): the database as SQLite's C library or libpq reads it, and
the two queries. The queries against real databases: tests/integration/test_plugin_queries_sql.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy.engine import URL, make_url

from lineside.adapters.db.plugin_queries import PluginDatabase, libpq_conninfo, plugin_database
from lineside.domain.lifecycle import DeviceState
from lineside.services.mqtt_access import MAY_NOT_CONNECT


def test_a_sqlite_file_is_given_by_its_absolute_path(tmp_path: Path) -> None:
    database = plugin_database(f"sqlite:///{tmp_path}/lineside.db")

    assert database is not None
    assert (database.kind, database.target) == ("sqlite", str((tmp_path / "lineside.db").resolve()))


@pytest.mark.parametrize("url", ["sqlite:///lineside.db", "sqlite+pysqlite:///./data/../lineside.db"])
def test_a_relative_sqlite_path_is_made_absolute_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.chdir(tmp_path)

    database = plugin_database(url)

    assert database is not None and database.kind == "sqlite"
    assert Path(database.target).is_absolute()
    assert database.target == str((tmp_path / "lineside.db").resolve())


@pytest.mark.parametrize(
    "url",
    [
        "sqlite://",
        "sqlite:///:memory:",
        "sqlite+pysqlite:///:memory:",
        "sqlite:///file:shared?mode=memory&cache=shared&uri=true",
    ],
)
def test_a_database_in_memory_is_none_for_no_other_process_can_open_it(url: str) -> None:
    assert plugin_database(url) is None


def test_a_postgresql_url_becomes_a_libpq_conninfo_of_its_own_options() -> None:
    url = "postgresql+psycopg://user:p'w\\x@host:5433/db?sslmode=require&foo=bar"

    database = plugin_database(url)

    assert database is not None and database.kind == "postgres"
    assert conninfo_to_dict(database.target) == {
        "host": "host",
        "port": "5433",
        "user": "user",
        "password": "p'w\\x",
        "dbname": "db",
        "sslmode": "require",
        "connect_timeout": "2",
    }
    assert "foo" not in database.target and "bar" not in database.target


def test_a_postgresql_url_without_host_or_password_leaves_them_to_libpq() -> None:
    database = plugin_database("postgresql://lineside@/lineside")

    assert database is not None and database.kind == "postgres"
    assert conninfo_to_dict(database.target) == {
        "user": "lineside",
        "dbname": "lineside",
        "connect_timeout": "2",
    }


@pytest.mark.parametrize(
    "password",
    ["p'w\\x", "with space", "'", "\\", "\\'", "ends with \\", "a=b c='d'", "pässwörd ✓", "#;\t"],
)
def test_libpq_reads_back_any_password(password: str) -> None:
    url = URL.create("postgresql+psycopg", username="o'neil", password=password, host="db", database="x y")

    parsed = conninfo_to_dict(libpq_conninfo(url))

    assert (parsed["password"], parsed["user"], parsed["dbname"]) == (password, "o'neil", "x y")


def test_the_libpq_options_pass_and_nothing_else() -> None:
    url = URL.create(
        "postgresql+psycopg",
        host="db",
        database="lineside",
        query={
            "sslmode": "verify-full",
            "sslrootcert": "/etc/ssl/ca's.pem",
            "application_name": "lineside plugin",
            "options": "-c statement_timeout=1000",
            "connect_timeout": "600",  # the plugin's own stays: it waits on Mosquitto's only thread
            "dbname": "another",
            "prepare_threshold": "0",
        },
    )

    parsed = conninfo_to_dict(libpq_conninfo(url))

    assert parsed == {
        "host": "db",
        "dbname": "lineside",
        "sslmode": "verify-full",
        "sslrootcert": "/etc/ssl/ca's.pem",
        "application_name": "lineside plugin",
        "options": "-c statement_timeout=1000",
        "connect_timeout": "2",
    }


def test_a_unix_socket_or_hosts_in_the_query_string_reach_the_plugin() -> None:
    """psycopg's form for a socket directory (and for several hosts): ``?host=...``."""
    socket = make_url("postgresql+psycopg://u@/db?host=/var/run/postgresql")
    several = make_url("postgresql+psycopg://u@/db?host=a,b&port=5432,5433&target_session_attrs=read-write")

    assert conninfo_to_dict(libpq_conninfo(socket))["host"] == "/var/run/postgresql"
    parsed = conninfo_to_dict(libpq_conninfo(several))
    assert (parsed["host"], parsed["port"], parsed["target_session_attrs"]) == (
        "a,b",
        "5432,5433",
        "read-write",
    )


@pytest.mark.parametrize("url", ["mysql://u@h/db", "oracle://u@h/db"])
def test_another_database_is_none(url: str) -> None:
    assert plugin_database(url) is None


def queries(url: str) -> PluginDatabase:
    database = plugin_database(url)
    assert database is not None
    return database


@pytest.mark.parametrize(
    ("url", "placeholder"),
    [("sqlite:////var/lib/lineside/lineside.db", "?"), ("postgresql+psycopg://u@h/db", "$1")],
)
def test_each_query_takes_one_hash_in_its_databases_placeholder(url: str, placeholder: str) -> None:
    database = queries(url)

    assert database.token_query.startswith("SELECT id FROM devices WHERE ")
    assert f"token_hash = {placeholder} AND " in database.token_query
    assert f"mqtt_password_hash = {placeholder} AND " in database.password_query
    assert "mqtt_password_hash" not in database.token_query
    for query in (database.token_query, database.password_query):
        assert query.count(placeholder) == 1
        assert not any(other in query for other in ("?", "$1", "%s", ":") if other != placeholder)


@pytest.mark.parametrize("url", ["sqlite:////var/lib/lineside/lineside.db", "postgresql+psycopg://u@h/db"])
def test_the_queries_refuse_the_states_that_may_not_connect_and_no_other(url: str) -> None:
    database = queries(url)

    assert {DeviceState.REVOKED, DeviceState.PENDING_APPROVAL} <= MAY_NOT_CONNECT
    for query in (database.token_query, database.password_query):
        refused = query.partition(" AND state NOT IN (")[2]
        assert refused.endswith(")")
        assert {value.strip(" '") for value in refused[:-1].split(",")} == {s.value for s in MAY_NOT_CONNECT}
