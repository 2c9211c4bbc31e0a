"""Stored first answers to create calls, so a retry with the same Idempotency-Key replays
the answer instead of creating twice.

A key belongs to the credential that used it (stored only as a keyed hash of both) and
lives for a day. A row without a status is a request still in flight.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from lineside.adapters.db import tables as t
from lineside.domain.errors import Conflict, InvalidInput
from lineside.domain.secret_tokens import SecretHasher

KEY_LIFETIME = timedelta(hours=24)
MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class StoredResponse:
    status_code: int
    content_type: str
    body: str


class SqlIdempotencyStore:
    def __init__(self, engine: Engine, hasher: SecretHasher) -> None:
        self._engine = engine
        self._hasher = hasher

    def scope(self, credential: str, key: str) -> str:
        if not key or len(key) > MAX_KEY_LENGTH:
            raise InvalidInput(f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters.")
        return self._hasher.hash(f"idempotency\x00{credential}\x00{key}")

    def begin(self, scope: str, request_hash: str) -> StoredResponse | None:
        """Claim the key for this request, or return the answer a first request got."""
        now = datetime.now(UTC)
        with self._engine.begin() as connection:
            connection.execute(
                delete(t.idempotency_keys).where(
                    t.idempotency_keys.c.scope_hash == scope,
                    t.idempotency_keys.c.created_at < now - KEY_LIFETIME,
                )
            )
            try:
                with connection.begin_nested():
                    connection.execute(
                        insert(t.idempotency_keys).values(
                            scope_hash=scope, request_hash=request_hash, created_at=now
                        )
                    )
                return None
            except IntegrityError:
                row = connection.execute(
                    select(t.idempotency_keys).where(t.idempotency_keys.c.scope_hash == scope)
                ).one()
        if row.request_hash != request_hash:
            raise InvalidInput("This Idempotency-Key was already used for a different request.")
        if row.status_code is None:
            raise Conflict("A request with this Idempotency-Key is still being processed.")
        return StoredResponse(row.status_code, row.content_type or "application/json", row.body or "")

    def finish(self, scope: str, response: StoredResponse | None) -> None:
        """Keep a successful answer for replay; forget a failed one so it can be retried."""
        with self._engine.begin() as connection:
            if response is None:
                connection.execute(delete(t.idempotency_keys).where(t.idempotency_keys.c.scope_hash == scope))
                return
            connection.execute(
                update(t.idempotency_keys)
                .where(t.idempotency_keys.c.scope_hash == scope)
                .values(
                    status_code=response.status_code,
                    content_type=response.content_type,
                    body=response.body,
                )
            )
