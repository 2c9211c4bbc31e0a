"""SQL repository of webhook endpoints, deliveries and attempts."""

from __future__ import annotations

from lineside.adapters.db.repositories import SqlRepository


class SqlWebhookRepository(SqlRepository):
    pass
