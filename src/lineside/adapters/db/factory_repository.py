"""SQL repositories of the connected factory: enrollment tokens, test runs, production tokens."""

from __future__ import annotations

from lineside.adapters.db.repositories import SqlRepository


class SqlFactoryTokenRepository(SqlRepository):
    pass


class SqlTestRunRepository(SqlRepository):
    pass


class SqlProductionTokenRepository(SqlRepository):
    pass
