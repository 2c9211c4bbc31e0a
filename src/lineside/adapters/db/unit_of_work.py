"""One database transaction, with the repositories that work inside it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cached_property
from types import TracebackType
from typing import Self

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError

from lineside.adapters.db.activity import SqlActivityRepository
from lineside.adapters.db.authority_repository import SqlAuthorityRepository
from lineside.adapters.db.device_counts import DeviceCountChanges, SqlDeviceCountRepository
from lineside.adapters.db.device_repository import SqlCertificateRepository, SqlDeviceRepository
from lineside.adapters.db.engine import (
    AUTOCOMMIT_OPTION,
    SQLITE_BUSY_TIMEOUT_MS,
    WRITE_OPTION,
    sqlite_writer_lock,
)
from lineside.adapters.db.factory_repository import (
    SqlFactoryTokenRepository,
    SqlProductionTokenRepository,
    SqlTestRunRepository,
)
from lineside.adapters.db.firmware_repository import SqlFirmwareRepository
from lineside.adapters.db.people_repository import SqlUserRepository
from lineside.adapters.db.repositories import (
    SqlApiKeyRepository,
    SqlDeviceGroupRepository,
    SqlEventOutbox,
    SqlOrganizationRepository,
    SqlProductRepository,
)
from lineside.adapters.db.static_token_repository import SqlStaticTokenBatchRepository, SqlTombstoneRepository
from lineside.adapters.db.station_repository import SqlStationLedger, SqlStationRepository
from lineside.adapters.db.transfer_repository import SqlTransferRepository
from lineside.adapters.db.webhook_repository import SqlWebhookRepository
from lineside.domain.errors import Conflict


class SqlUnitOfWork:
    """One transaction. Its repositories are made on first use: most units of work touch two
    or three of them, and device authentication only one."""

    def __init__(
        self,
        engine: Engine,
        *,
        write: bool = True,
        snapshot: bool = True,
        on_commit: Callable[[Sequence[str]], None] | None = None,
    ) -> None:
        self._engine = engine
        self._on_commit = on_commit
        self._write = write
        # A read of one statement needs no transaction: skipping BEGIN/ROLLBACK saves two
        # round trips on PostgreSQL, which is most of the cost of authenticating a device.
        self._autocommit = not write and not snapshot
        self._connection: Connection | None = None
        self._writer_lock = sqlite_writer_lock(engine) if write else None
        self._holds_writer_lock = False

    def __enter__(self) -> Self:
        options: dict[str, object] = {WRITE_OPTION: self._write, AUTOCOMMIT_OPTION: self._autocommit}
        if self._autocommit and self._engine.dialect.name != "sqlite":
            # SQLite's driver already runs in autocommit here (engine.py sends BEGIN itself).
            options["isolation_level"] = "AUTOCOMMIT"
        if self._writer_lock is not None:
            # Bounded as SQLite's own wait is: past it, go on and let SQLite answer (busy).
            self._holds_writer_lock = self._writer_lock.acquire(timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)
        try:
            connection = self._engine.connect().execution_options(**options)
            try:
                connection.begin()
            except BaseException:
                connection.close()
                raise
        except BaseException:
            self._release_writer_lock()
            raise
        self._connection = connection
        self._counts = DeviceCountChanges()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._connection is not None
        try:
            self._connection.rollback()
        finally:
            try:
                self._connection.close()
            finally:
                self._connection = None
                self._release_writer_lock()
        if isinstance(exc, IntegrityError):
            # A unique constraint caught what a concurrent request did between our check and
            # our write: the same answer the check would have given.
            raise Conflict("The change conflicts with another one made at the same time.") from exc

    # -- the repositories --------------------------------------------------------------------

    @property
    def _live(self) -> Connection:
        assert self._connection is not None, "a unit of work's repositories live inside its with block"
        return self._connection

    @cached_property
    def organizations(self) -> SqlOrganizationRepository:
        return SqlOrganizationRepository(self._live)

    @cached_property
    def api_keys(self) -> SqlApiKeyRepository:
        return SqlApiKeyRepository(self._live)

    @cached_property
    def products(self) -> SqlProductRepository:
        return SqlProductRepository(self._live)

    @cached_property
    def groups(self) -> SqlDeviceGroupRepository:
        return SqlDeviceGroupRepository(self._live)

    @cached_property
    def devices(self) -> SqlDeviceRepository:
        return SqlDeviceRepository(self._live, self._counts)

    @cached_property
    def certificates(self) -> SqlCertificateRepository:
        return SqlCertificateRepository(self._live)

    @cached_property
    def authorities(self) -> SqlAuthorityRepository:
        return SqlAuthorityRepository(self._live)

    @cached_property
    def events(self) -> SqlEventOutbox:
        return SqlEventOutbox(self._live)

    @cached_property
    def users(self) -> SqlUserRepository:
        return SqlUserRepository(self._live)

    @cached_property
    def transfers(self) -> SqlTransferRepository:
        return SqlTransferRepository(self._live)

    @cached_property
    def static_batches(self) -> SqlStaticTokenBatchRepository:
        return SqlStaticTokenBatchRepository(self._live)

    @cached_property
    def tombstones(self) -> SqlTombstoneRepository:
        return SqlTombstoneRepository(self._live)

    @cached_property
    def factory_tokens(self) -> SqlFactoryTokenRepository:
        return SqlFactoryTokenRepository(self._live)

    @cached_property
    def test_runs(self) -> SqlTestRunRepository:
        return SqlTestRunRepository(self._live)

    @cached_property
    def production_tokens(self) -> SqlProductionTokenRepository:
        return SqlProductionTokenRepository(self._live)

    @cached_property
    def firmware(self) -> SqlFirmwareRepository:
        return SqlFirmwareRepository(self._live)

    @cached_property
    def webhooks(self) -> SqlWebhookRepository:
        return SqlWebhookRepository(self._live)

    @cached_property
    def stations(self) -> SqlStationRepository:
        return SqlStationRepository(self._live)

    @cached_property
    def station_ledger(self) -> SqlStationLedger:
        return SqlStationLedger(self._live)

    @cached_property
    def device_counts(self) -> SqlDeviceCountRepository:
        return SqlDeviceCountRepository(self._live, self._counts)

    @cached_property
    def activity(self) -> SqlActivityRepository:
        return SqlActivityRepository(self._live, self._counts.activity)

    def _release_writer_lock(self) -> None:
        if self._holds_writer_lock:
            assert self._writer_lock is not None
            self._holds_writer_lock = False
            self._writer_lock.release()

    def commit(self) -> None:
        assert self._connection is not None
        try:
            self._counts.write(self._connection)  # last, so hot counter rows are held briefly
            self._connection.commit()
        except IntegrityError as error:
            raise Conflict("The change conflicts with another one made at the same time.") from error
        events: SqlEventOutbox | None = self.__dict__.get("events")  # made only if used
        if self._on_commit is not None and events is not None and events.added_types:
            committed, events.added_types = events.added_types, []
            self._on_commit(committed)


class SqlUnitOfWorkFactory:
    """Units of work on ``engine``; ``on_commit`` hears the types of the events each commit
    made durable (the metrics count them)."""

    def __init__(self, engine: Engine, on_commit: Callable[[Sequence[str]], None] | None = None) -> None:
        self.engine = engine
        self._on_commit = on_commit

    def __call__(self, *, write: bool = True, snapshot: bool = True) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.engine, write=write, snapshot=snapshot, on_commit=self._on_commit)
