"""Stored first answers to create calls, so a retry with the same Idempotency-Key replays
the answer instead of creating twice.

A key belongs to the credential that used it (stored only as a keyed hash of both) and
lives for a day. A row without a status is a request still in flight.

Answers can hold secrets (a new API key, a device token, a private key), so the stored
body is sealed with AES-GCM under a key derived from the server key *and the caller's
credential*: the database and the server key together still do not reveal it; only a
retry presenting the same credential can open it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from lineside.adapters.db import tables as t
from lineside.adapters.sealing import AesGcmSecretBox
from lineside.domain.clock import utc_now
from lineside.domain.errors import Conflict, InvalidInput
from lineside.domain.secret_tokens import SecretHasher
from lineside.services.ports import StoredResponse

KEY_LIFETIME = timedelta(hours=24)
MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class IdempotencyScope:
    """Where a (credential, Idempotency-Key) pair is stored, and the key that seals it."""

    row_key: str
    sealing_key: bytes = field(repr=False)

    def seal(self, body: str) -> str:
        return AesGcmSecretBox(self.sealing_key).seal(body, self.row_key)

    def open(self, stored: str) -> str:
        return AesGcmSecretBox(self.sealing_key).open(stored, self.row_key)


class SqlIdempotencyStore:
    def __init__(
        self, engine: Engine, hasher: SecretHasher, *, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self._engine = engine
        self._hasher = hasher
        self._clock = clock

    def scope(self, credential: str, key: str) -> IdempotencyScope:
        if not key or len(key) > MAX_KEY_LENGTH:
            raise InvalidInput(f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters.")
        return IdempotencyScope(
            row_key=self._hasher.hash(f"idempotency-row\x00{credential}\x00{key}"),
            sealing_key=bytes.fromhex(self._hasher.hash(f"idempotency-seal\x00{credential}\x00{key}")),
        )

    def begin(self, scope: IdempotencyScope, request_hash: str) -> StoredResponse | None:
        """Claim the key for this request, or return the answer a first request got."""
        now = self._clock()
        with self._engine.begin() as connection:
            connection.execute(
                delete(t.idempotency_keys).where(
                    t.idempotency_keys.c.scope_hash == scope.row_key,
                    t.idempotency_keys.c.created_at < now - KEY_LIFETIME,
                )
            )
            try:
                with connection.begin_nested():
                    connection.execute(
                        insert(t.idempotency_keys).values(
                            scope_hash=scope.row_key, request_hash=request_hash, created_at=now
                        )
                    )
                return None
            except IntegrityError:
                row = connection.execute(
                    select(t.idempotency_keys).where(t.idempotency_keys.c.scope_hash == scope.row_key)
                ).one()
        if row.request_hash != request_hash:
            raise InvalidInput("This Idempotency-Key was already used for a different request.")
        if row.status_code is None:
            raise Conflict("A request with this Idempotency-Key is still being processed.")
        body = scope.open(row.body) if row.body else ""
        return StoredResponse(row.status_code, row.content_type or "application/json", body)

    def finish(self, scope: IdempotencyScope, response: StoredResponse | None) -> None:
        """Keep a successful answer for replay; forget a failed one so it can be retried."""
        with self._engine.begin() as connection:
            if response is None:
                connection.execute(
                    delete(t.idempotency_keys).where(t.idempotency_keys.c.scope_hash == scope.row_key)
                )
                return
            connection.execute(
                update(t.idempotency_keys)
                .where(t.idempotency_keys.c.scope_hash == scope.row_key)
                .values(
                    status_code=response.status_code,
                    content_type=response.content_type,
                    body=scope.seal(response.body),
                )
            )
