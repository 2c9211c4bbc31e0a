"""The factory line's fast paths (bench/factory_line.py) answer as the slow ones did: the
async routes refuse bad credentials before a bad body, SQLite's writers of one process queue
on a lock that every unit of work gives back, and the webhook worker goes again without a
pause only after a round that filled a batch."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from lineside.adapters.db.engine import SqliteWriterLock, create_database_engine, sqlite_writer_lock
from lineside.adapters.db.unit_of_work import SqlUnitOfWorkFactory
from lineside.bootstrap import Application
from lineside.services.webhook_delivery import dispatch_events, run_once
from tests.support.api import Tenant, assert_problem, new_tenant
from tests.support.event_loops import run_coroutine
from tests.support.factory import enrolled, factory_token
from tests.support.server import http_client_for
from tests.support.webhooks import API, Receiver, create_endpoint, isolated_application

BAD_BODIES = {"test-runs": {"passed": "yes"}, "bless": {"unexpected": 1}}


@pytest.mark.parametrize("step", sorted(BAD_BODIES))
def test_a_bad_key_is_refused_before_a_bad_body_is(tenant: Tenant, step: str) -> None:
    device = enrolled(tenant.http, factory_token(tenant, tenant.product()["id"]))["device"]
    path = f"{API}/devices/{device['id']}/{step}"
    for bad_key in ("lsk_unknown", "not-a-lineside-key"):
        refused = tenant.http.post(
            path, json=BAD_BODIES[step], headers={"Authorization": f"Bearer {bad_key}"}
        )
        assert_problem(refused, 401)
    assert_problem(tenant.http.post(path, json=BAD_BODIES[step]), 401)
    assert_problem(tenant.post(path, json=BAD_BODIES[step]), 422)


def taken_elsewhere(lock: SqliteWriterLock) -> bool:
    """Whether another thread would have to wait for ``lock`` now."""
    got: list[bool] = []

    def probe() -> None:
        got.append(lock.acquire(timeout=0))
        if got[0]:
            lock.release()  # by the thread that took it, as its RLock requires

    thread = threading.Thread(target=probe)
    thread.start()
    thread.join()
    return not got[0]


@pytest.fixture
def sqlite_units(tmp_path: Path) -> Iterator[tuple[SqlUnitOfWorkFactory, SqliteWriterLock]]:
    engine = create_database_engine(f"sqlite:///{tmp_path / 'lock.db'}")
    lock = sqlite_writer_lock(engine)
    assert lock is not None
    yield SqlUnitOfWorkFactory(engine), lock
    engine.dispose()


def test_a_sqlite_writer_holds_the_process_lock_until_its_unit_of_work_ends(
    sqlite_units: tuple[SqlUnitOfWorkFactory, SqliteWriterLock],
) -> None:
    units, lock = sqlite_units
    with units():
        assert taken_elsewhere(lock)
    assert not taken_elsewhere(lock)


def test_a_sqlite_writer_that_fails_releases_the_lock(
    sqlite_units: tuple[SqlUnitOfWorkFactory, SqliteWriterLock],
) -> None:
    units, lock = sqlite_units
    with pytest.raises(RuntimeError), units():
        raise RuntimeError("the service gave up halfway")
    assert not taken_elsewhere(lock)


def test_sqlite_readers_take_no_lock(sqlite_units: tuple[SqlUnitOfWorkFactory, SqliteWriterLock]) -> None:
    units, lock = sqlite_units
    with units(write=False), units(write=False, snapshot=False):
        assert not taken_elsewhere(lock)


def test_a_writer_may_read_in_a_second_unit_of_work_meanwhile(
    sqlite_units: tuple[SqlUnitOfWorkFactory, SqliteWriterLock],
) -> None:
    units, lock = sqlite_units
    with units(), units(write=False):
        assert taken_elsewhere(lock)
    assert not taken_elsewhere(lock)


def test_only_sqlite_has_a_writer_lock(database_url: str) -> None:
    engine = create_database_engine(database_url)
    try:
        assert (sqlite_writer_lock(engine) is not None) == database_url.startswith("sqlite")
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def small_batches(
    database_url: str, data_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Application]:
    """A database of its own (no other test's events) and a worker that sends two at a time."""
    with isolated_application(
        database_url, data_dir, tmp_path_factory.mktemp("rounds"), webhook_batch_size=2
    ) as application:
        yield application


def test_only_a_round_that_fills_a_batch_asks_to_go_again_at_once(small_batches: Application) -> None:
    services = small_batches.services
    with http_client_for(small_batches) as http, Receiver() as receiver:
        tenant = new_tenant(small_batches, http)
        create_endpoint(tenant, receiver.url(), ["product.created"])
        dispatch_events(services)  # the tenant's own setup events: no deliveries for them
        for _ in range(3):
            tenant.product()

        first = run_coroutine(run_once(services))
        assert (first.handled, first.full) == (3 + 2, True)  # 3 dispatched, 2 of 3 sent
        second = run_coroutine(run_once(services))
        assert (second.handled, second.full) == (1, False)
        idle = run_coroutine(run_once(services))
        assert (idle.handled, idle.full) == (0, False)
    assert len(receiver.received) == 3
