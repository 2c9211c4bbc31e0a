"""The Mosquitto plugin's own queries (``adapters/db/plugin_queries``) run as the plugin runs
them, against the migrated test database: SQLite's C library on the file it is told, or
libpq on the connection string it is told, with the device's keyed hash as the one
parameter."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Literal

import psycopg
import pytest
from sqlalchemy import update

from lineside.adapters.db import tables as t
from lineside.adapters.db.plugin_queries import PluginDatabase, plugin_database
from lineside.bootstrap import Application
from lineside.domain.lifecycle import DeviceState
from tests.support.api import Tenant
from tests.support.factory import API

Query = Literal["token", "password"]
Finds = Callable[[Query, str], list[str]]


def run(database: PluginDatabase, query: str, proof: str) -> list[str]:
    if database.kind == "sqlite":
        assert Path(database.target).is_file()  # connecting must not make a new database
        with closing(sqlite3.connect(database.target)) as connection:
            connection.execute("PRAGMA query_only = ON")
            return [device_id for (device_id,) in connection.execute(query, (proof,))]
    # libpq's own $1 placeholder, as PQprepare takes it; the plugin's connection string
    with psycopg.connect(database.target, cursor_factory=psycopg.RawCursor) as connection:
        return [device_id for (device_id,) in connection.execute(query, (proof,))]


@pytest.fixture
def finds(application: Application) -> Finds:
    """The device ids the plugin's token or password query finds for a hash."""
    database = plugin_database(application.settings.database_url)
    assert database is not None

    def found(query: Query, proof: str) -> list[str]:
        sql = database.token_query if query == "token" else database.password_query
        return run(database, sql, proof)

    return found


def hash_of(application: Application, secret: str) -> str:
    return application.services.hasher.hash(secret)


def test_the_token_query_finds_the_device_by_its_current_token_until_it_is_revoked(
    application: Application, tenant: Tenant, finds: Finds
) -> None:
    device_id = tenant.device(tenant.product()["id"])["id"]
    old = hash_of(application, tenant.token(device_id))
    new = hash_of(application, tenant.token(device_id))  # replaces the first token

    found = (finds("token", old), finds("token", new), finds("password", new))
    assert tenant.post(f"{API}/devices/{device_id}/revoke").status_code == 200
    revoked = finds("token", new)

    assert found == ([], [device_id], [])
    assert revoked == []


def test_the_password_query_finds_the_device_by_its_mqtt_password_until_it_is_revoked(
    application: Application, tenant: Tenant, finds: Finds
) -> None:
    device_id = tenant.device(tenant.product()["id"])["id"]
    issued = tenant.created(f"{API}/devices/{device_id}/credentials", {"type": "mqtt_password"})
    proof = hash_of(application, issued["secret"])

    found = (finds("password", proof), finds("token", proof))
    assert tenant.post(f"{API}/devices/{device_id}/revoke").status_code == 200

    assert found == ([device_id], [])
    assert finds("password", proof) == []


@pytest.mark.parametrize("state", [DeviceState.PENDING_APPROVAL, DeviceState.ACTIVATED, DeviceState.BLESSED])
def test_the_queries_follow_the_devices_state(
    application: Application, tenant: Tenant, finds: Finds, state: DeviceState
) -> None:
    device_id = tenant.device(tenant.product()["id"])["id"]
    proof = hash_of(application, tenant.token(device_id))
    # Straight into the row: the query is what is under test, not the way there.
    with application.engine.begin() as connection:
        connection.execute(update(t.devices).where(t.devices.c.id == device_id).values(state=state.value))

    expected = [] if state is DeviceState.PENDING_APPROVAL else [device_id]
    assert finds("token", proof) == expected


def test_an_unknown_hash_finds_nobody(finds: Finds) -> None:
    assert finds("token", "0" * 64) == [] and finds("password", "f" * 64) == []
