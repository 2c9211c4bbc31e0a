"""What Lineside's Mosquitto plugin reads itself to accept a device's password without asking
Lineside (``adapters/mqtt/mosquitto_credentials.c``): where the database is, for libpq or
SQLite's C library, and the two queries, written here from the tables' own definitions so a
renamed column cannot silently break the plugin.

A query takes one parameter, the keyed hash of the password, and selects the id of the
device whose current token (or MQTT password) it is, if that device may connect now: the
rule of ``services.mqtt_access`` (the plugin then compares the id with the client id). The
partial unique indexes on the two hash columns answer it in one probe.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sqlalchemy.engine import URL, make_url

from lineside.adapters.db import tables as t
from lineside.services.mqtt_access import MAY_NOT_CONNECT

# libpq keywords a SQLAlchemy URL's query string may carry through to the plugin (host and
# port there are psycopg's form for a Unix socket directory or several hosts).
_LIBPQ_OPTIONS = frozenset(
    {
        "host",
        "hostaddr",
        "port",
        "target_session_attrs",
        "sslmode",
        "sslrootcert",
        "sslcert",
        "sslkey",
        "sslpassword",
        "sslcrl",
        "gssencmode",
        "application_name",
        "options",
    }
)
_CONNECT_TIMEOUT_SECONDS = 2  # the plugin connects on Mosquitto's only thread


@dataclass(frozen=True)
class PluginDatabase:
    """The database as the plugin opens it, and its two queries."""

    kind: Literal["sqlite", "postgres"]
    target: str  # an absolute SQLite path, or a libpq connection string
    token_query: str
    password_query: str


def plugin_database(database_url: str) -> PluginDatabase | None:
    """The plugin's view of ``database_url``; None for an in-memory SQLite database, which
    no other process can open (then Lineside answers every CONNECT)."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        if url.database in (None, "", ":memory:") or url.database.startswith("file:"):
            return None
        return _with_queries("sqlite", str(Path(url.database).resolve()), "?")
    if url.get_backend_name() == "postgresql":
        return _with_queries("postgres", libpq_conninfo(url), "$1")
    return None


def libpq_conninfo(url: URL) -> str:
    """``url`` as libpq keyword=value pairs (values quoted: a password may hold spaces)."""
    pairs: dict[str, str] = {"connect_timeout": str(_CONNECT_TIMEOUT_SECONDS)}
    for keyword, value in (
        ("host", url.host),
        ("port", url.port),
        ("user", url.username),
        ("password", url.password),
        ("dbname", url.database),
    ):
        if value is not None and value != "":
            pairs[keyword] = str(value)
    for keyword, option in url.query.items():
        if keyword in _LIBPQ_OPTIONS and isinstance(option, str):
            pairs[keyword] = option
    return " ".join(f"{keyword}={_quoted(value)}" for keyword, value in pairs.items())


def _quoted(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _with_queries(kind: Literal["sqlite", "postgres"], target: str, placeholder: str) -> PluginDatabase:
    columns = t.devices.c
    return PluginDatabase(
        kind,
        target,
        token_query=_query(columns.token_hash.name, placeholder),
        password_query=_query(columns.mqtt_password_hash.name, placeholder),
    )


def _query(hash_column: str, placeholder: str) -> str:
    devices = t.devices
    refused = ", ".join(f"'{state.value}'" for state in sorted(MAY_NOT_CONNECT))
    # Names from the table definitions and states from the enum, never from input.
    return (
        f"SELECT {devices.c.id.name} FROM {devices.name} "  # noqa: S608
        f"WHERE {hash_column} = {placeholder} AND {devices.c.state.name} NOT IN ({refused})"
    )
