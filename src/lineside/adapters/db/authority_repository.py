"""Makers' own certificate authorities (factory PKI), and the serials their CRLs revoke."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, bindparam, delete, insert, select, update

from lineside.adapters.db import tables as t
from lineside.adapters.db.repositories import SqlRepository, owned_within
from lineside.domain.models import AuthorityStatus, CertificateAuthorityRecord

_FIELDS = tuple(CertificateAuthorityRecord.__dataclass_fields__)
_REVOKED_AMONG = select(t.authority_revocations.c.serial_hex).where(
    t.authority_revocations.c.authority_id == bindparam("authority_id"),
    t.authority_revocations.c.serial_hex.in_(bindparam("serials", expanding=True)),
)
_SERIALS_PER_QUERY = 1000  # bound parameters per IN list: well under every driver's limit


def _authority(row: Row[Any]) -> CertificateAuthorityRecord:
    m = row._mapping
    values = {name: m[name] for name in _FIELDS}
    return CertificateAuthorityRecord(**{**values, "status": AuthorityStatus(m["status"])})


class SqlAuthorityRepository(SqlRepository):
    def add(
        self, authority: CertificateAuthorityRecord, challenge_hash: str, challenge_expires_at: datetime
    ) -> None:
        values = {name: getattr(authority, name) for name in _FIELDS}
        self.connection.execute(
            insert(t.certificate_authorities).values(
                **{**values, "status": authority.status.value},
                challenge_hash=challenge_hash,
                challenge_expires_at=challenge_expires_at,
            )
        )

    def get(self, authority_id: str, *, within: str) -> CertificateAuthorityRecord | None:
        c = t.certificate_authorities.c
        row = self._first(
            select(t.certificate_authorities).where(
                c.id == authority_id, owned_within(c.organization_id, within)
            )
        )
        return _authority(row) if row else None

    def list_for_product(self, product_id: str) -> list[CertificateAuthorityRecord]:
        c = t.certificate_authorities.c
        query = select(t.certificate_authorities).where(c.product_id == product_id).order_by(c.id)
        return [_authority(row) for row in self._all(query)]

    def challenge_of(self, authority_id: str) -> tuple[str, datetime] | None:
        c = t.certificate_authorities.c
        row = self._first(select(c.challenge_hash, c.challenge_expires_at).where(c.id == authority_id))
        if row is None or row.challenge_hash is None:
            return None
        return row.challenge_hash, row.challenge_expires_at

    def set_status(self, authority_id: str, status: AuthorityStatus, at: datetime) -> None:
        values: dict[str, Any] = {"status": status.value}
        if status is AuthorityStatus.VERIFIED:  # the challenge is spent
            values |= {"challenge_hash": None, "challenge_expires_at": None, "verified_at": at}
        c = t.certificate_authorities.c
        self.connection.execute(
            update(t.certificate_authorities).where(c.id == authority_id).values(**values)
        )

    def close_registration(self, authority_id: str, at: datetime) -> None:
        c = t.certificate_authorities.c
        self.connection.execute(
            update(t.certificate_authorities).where(c.id == authority_id).values(registration_closed_at=at)
        )

    def verified_with_fingerprint(self, fingerprint_sha256: str) -> CertificateAuthorityRecord | None:
        c = t.certificate_authorities.c
        row = self._first(
            select(t.certificate_authorities).where(
                c.fingerprint_sha256 == fingerprint_sha256, c.status != AuthorityStatus.PENDING.value
            )
        )
        return _authority(row) if row else None

    def with_key_ids(self, key_ids: Sequence[str]) -> list[CertificateAuthorityRecord]:
        if not key_ids:
            return []
        c = t.certificate_authorities.c
        query = select(t.certificate_authorities).where(c.key_id.in_(list(key_ids))).order_by(c.id)
        return [_authority(row) for row in self._all(query)]

    def delete(self, authority_id: str) -> None:
        r, c = t.authority_revocations.c, t.certificate_authorities.c
        self.connection.execute(delete(t.authority_revocations).where(r.authority_id == authority_id))
        self.connection.execute(delete(t.certificate_authorities).where(c.id == authority_id))

    def replace_revoked_serials(self, authority_id: str, serials: Sequence[str], at: datetime) -> None:
        r, c = t.authority_revocations.c, t.certificate_authorities.c
        self.connection.execute(delete(t.authority_revocations).where(r.authority_id == authority_id))
        if serials:
            rows = [{"authority_id": authority_id, "serial_hex": serial} for serial in serials]
            self.connection.execute(insert(t.authority_revocations), rows)
        self.connection.execute(
            update(t.certificate_authorities).where(c.id == authority_id).values(crl_updated_at=at)
        )

    def is_revoked(self, authority_id: str, serial_hex: str) -> bool:
        r = t.authority_revocations.c
        query = select(r.serial_hex).where(r.authority_id == authority_id, r.serial_hex == serial_hex)
        return self._first(query) is not None

    def revoked_among(self, authority_id: str, serials: Sequence[str]) -> set[str]:
        revoked: set[str] = set()
        for start in range(0, len(serials), _SERIALS_PER_QUERY):
            chunk = list(serials[start : start + _SERIALS_PER_QUERY])
            found = self.connection.execute(_REVOKED_AMONG, {"authority_id": authority_id, "serials": chunk})
            revoked.update(found.scalars())
        return revoked

    def expiring_unwarned(self, before: datetime) -> list[CertificateAuthorityRecord]:
        c = t.certificate_authorities.c
        query = select(t.certificate_authorities).where(
            c.status == AuthorityStatus.VERIFIED.value, c.not_after < before, c.expiry_warned_at.is_(None)
        )
        # Several workers check at once (every server process runs one): on PostgreSQL a CA
        # another is announcing is skipped, not announced twice (SQLite writes one at a time).
        query = query.order_by(c.id).limit(1000).with_for_update(skip_locked=True)
        return [_authority(row) for row in self._all(query)]

    def mark_warned(self, authority_id: str, at: datetime) -> None:
        c = t.certificate_authorities.c
        self.connection.execute(
            update(t.certificate_authorities).where(c.id == authority_id).values(expiry_warned_at=at)
        )

    def certificates_to_trust(self) -> list[str]:
        c = t.certificate_authorities.c
        query = select(c.certificate_pem).where(c.status != AuthorityStatus.PENDING.value).order_by(c.id)
        return [pem for (pem,) in self.connection.execute(query)]
