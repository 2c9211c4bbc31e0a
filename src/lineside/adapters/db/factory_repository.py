"""SQL repositories of the connected factory: enrollment tokens, test runs, production tokens.

Enrollment, test runs and blessing are a factory line's hot path (hundreds of DUTs a second):
their statements are built once, with bound parameters, so each call skips SQLAlchemy's
statement construction, which costs as much as the query itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Select, bindparam, insert, select, update

from lineside.adapters.db import tables as t
from lineside.adapters.db.bulk_insert import bind_processor, insert_rows
from lineside.adapters.db.pages import MAX_BRANCH_ORGANIZATIONS, subtree_ids
from lineside.adapters.db.repositories import SqlRepository, owned_within, product_from_row
from lineside.domain.factory import FactoryToken, ProductionToken, TestRun
from lineside.domain.models import Product

_tokens = t.factory_enrollment_tokens
_FACTORY_TOKEN_FIELDS = tuple(FactoryToken.__dataclass_fields__)
# The token's columns are labelled so they cannot clash with the product's in the join.
_ACTIVE_FACTORY_TOKEN_WITH_PRODUCT: Select[Any] = (
    select(*(_tokens.c[name].label(f"token_{name}") for name in _FACTORY_TOKEN_FIELDS), t.products)
    .join(t.products, t.products.c.id == _tokens.c.product_id)
    .where(_tokens.c.token_hash == bindparam("token_hash"), _tokens.c.revoked_at.is_(None))
)


def _factory_token(row: Row[Any], prefix: str = "") -> FactoryToken:
    m = row._mapping
    return FactoryToken(**{name: m[prefix + name] for name in _FACTORY_TOKEN_FIELDS})


class SqlFactoryTokenRepository(SqlRepository):
    def add(self, token: FactoryToken, token_hash: str) -> None:
        values = {name: getattr(token, name) for name in _FACTORY_TOKEN_FIELDS}
        self.connection.execute(insert(_tokens).values(**values, token_hash=token_hash))

    def find_active_by_hash(self, token_hash: str) -> tuple[FactoryToken, Product] | None:
        row = self.connection.execute(_ACTIVE_FACTORY_TOKEN_WITH_PRODUCT, {"token_hash": token_hash}).first()
        return (_factory_token(row, "token_"), product_from_row(row)) if row else None

    def get(self, token_id: str, *, within: str) -> FactoryToken | None:
        row = self._first(
            select(_tokens).where(_tokens.c.id == token_id, owned_within(_tokens.c.organization_id, within))
        )
        return _factory_token(row) if row else None

    def list(self, *, within: str) -> list[FactoryToken]:
        query = select(_tokens).where(owned_within(_tokens.c.organization_id, within))
        return [_factory_token(row) for row in self._all(query.order_by(_tokens.c.id))]

    def revoke(self, token_id: str, at: datetime) -> None:
        self.connection.execute(
            update(_tokens)
            .where(_tokens.c.id == token_id, _tokens.c.revoked_at.is_(None))
            .values(revoked_at=at)
        )


_runs = t.test_runs
_TEST_RUN_FIELDS = tuple(TestRun.__dataclass_fields__)
_INSERT_TEST_RUN = insert(_runs)
_RUNS_OF_DEVICE = (
    select(_runs)
    .where(_runs.c.device_id == bindparam("device_id"))
    .order_by(_runs.c.created_at.desc(), _runs.c.id.desc())
)
_LATEST_RUN = _RUNS_OF_DEVICE.limit(1)
_LATEST_RUN_SINCE = _RUNS_OF_DEVICE.where(_runs.c.created_at >= bindparam("since")).limit(1)


def _bulk_row(run: TestRun, to_time: Callable[[Any], Any]) -> tuple[Any, ...]:
    """The run's values in ``_TEST_RUN_FIELDS`` order as its columns bind them."""
    row = {name: getattr(run, name) for name in _TEST_RUN_FIELDS}
    row["measurements"] = json.dumps(run.measurements)  # as the JSON column binds it
    row["created_at"] = to_time(run.created_at)
    return tuple(row.values())


def _test_run(row: Row[Any]) -> TestRun:
    m = row._mapping
    return TestRun(**{name: m[name] for name in _TEST_RUN_FIELDS})


class SqlTestRunRepository(SqlRepository):
    __test__ = False  # not a pytest test class, whatever its name says

    def add(self, run: TestRun) -> None:
        self.connection.execute(_INSERT_TEST_RUN, {name: getattr(run, name) for name in _TEST_RUN_FIELDS})

    def latest_for_device(self, device_id: str, *, since: datetime | None) -> TestRun | None:
        if since is None:
            row = self.connection.execute(_LATEST_RUN, {"device_id": device_id}).first()
        else:
            row = self.connection.execute(_LATEST_RUN_SINCE, {"device_id": device_id, "since": since}).first()
        return _test_run(row) if row else None

    def list_for_device(self, device_id: str) -> list[TestRun]:
        return [_test_run(row) for row in self.connection.execute(_RUNS_OF_DEVICE, {"device_id": device_id})]

    # -- a chunk of a station's ledger (services.station_chunk) -----------------------------

    def add_many(self, runs: Sequence[TestRun]) -> None:
        """In one bulk insert (adapters.db.bulk_insert: COPY on PostgreSQL)."""
        if not runs:
            return
        to_time = bind_processor(_runs.c.created_at.type, self.connection.dialect)
        rows = (_bulk_row(run, to_time) for run in runs)
        insert_rows(self.connection, "test_runs", _TEST_RUN_FIELDS, rows)

    def ids_existing(self, run_ids: Sequence[str]) -> set[str]:
        if not run_ids:
            return set()
        query = select(_runs.c.id).where(self._one_of(_runs.c.id, run_ids))
        return {str(run_id) for run_id in self.connection.execute(query).scalars()}

    def latest_for_devices(self, device_ids: Sequence[str]) -> dict[str, TestRun]:
        """Each device's newest run (as ``latest_for_device`` orders them). A unit on the line
        has a few runs, so reading them all is one cheap query."""
        if not device_ids:
            return {}
        query = select(_runs).where(self._one_of(_runs.c.device_id, device_ids))
        latest: dict[str, TestRun] = {}
        for run in map(_test_run, self.connection.execute(query)):
            known = latest.get(run.device_id)
            if known is None or (run.created_at, run.id) > (known.created_at, known.id):
                latest[run.device_id] = run
        return latest


_production = t.production_tokens
_PRODUCTION_TOKEN_FIELDS = tuple(ProductionToken.__dataclass_fields__)


def _production_token(row: Row[Any]) -> ProductionToken:
    m = row._mapping
    return ProductionToken(**{name: m[name] for name in _PRODUCTION_TOKEN_FIELDS})


class SqlProductionTokenRepository(SqlRepository):
    def add(self, token: ProductionToken, token_hash: str) -> None:
        values = {name: getattr(token, name) for name in _PRODUCTION_TOKEN_FIELDS}
        self.connection.execute(insert(_production).values(**values, token_hash=token_hash))

    def find_by_hash(self, token_hash: str, *, within: str) -> ProductionToken | None:
        query = select(_production).where(_production.c.token_hash == token_hash)
        if within != "/":  # every organization: no need to ask which
            query = query.where(owned_within(_production.c.organization_id, within))
        row = self._first(query)
        return _production_token(row) if row else None

    def latest(self, *, within: str, limit: int) -> list[ProductionToken]:
        """The subtree's newest ``limit``, newest first: per organization read backwards
        along (organization_id, id) (ids are time-ordered)."""
        c, rows = _production.c, []
        for organization_id in subtree_ids(self.connection, within)[:MAX_BRANCH_ORGANIZATIONS]:
            newest = select(_production).where(c.organization_id == organization_id)
            rows += self._all(newest.order_by(c.id.desc()).limit(limit))
        rows.sort(key=lambda row: row.id, reverse=True)
        return [_production_token(row) for row in rows[:limit]]

    def use_if_unused(self, token_id: str, device_id: str, at: datetime) -> bool:
        """The one winner of concurrent activations: the update only matches an unused row
        (PostgreSQL re-checks the condition after waiting for a concurrent writer's lock)."""
        c = _production.c
        result = self.connection.execute(
            update(_production)
            .where(c.id == token_id, c.used_at.is_(None))
            .values(used_at=at, device_id=device_id)
        )
        return result.rowcount == 1
