"""SQL repositories of people: users, their sessions, memberships and invitations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, insert, select, update

from lineside.adapters.db import tables as t
from lineside.adapters.db.repositories import SqlRepository, organization_from_row
from lineside.domain.models import Organization, Role, User


def _user(row: Row[Any]) -> User:
    m = row._mapping
    return User(
        id=m["id"],
        email=m["email"],
        personal_organization_id=m["personal_organization_id"],
        created_at=m["created_at"],
    )


class SqlUserRepository(SqlRepository):
    def add(self, user: User, password_hash: str) -> None:
        self.connection.execute(
            insert(t.users).values(
                id=user.id,
                email=user.email,
                password_hash=password_hash,
                personal_organization_id=user.personal_organization_id,
                created_at=user.created_at,
            )
        )

    def find_by_email(self, email: str) -> tuple[User, str] | None:
        row = self._first(select(t.users).where(t.users.c.email == email))
        return (_user(row), row._mapping["password_hash"]) if row else None

    def get(self, user_id: str) -> User | None:
        row = self._first(select(t.users).where(t.users.c.id == user_id))
        return _user(row) if row else None

    def add_membership(self, user_id: str, organization_id: str, at: datetime, role: Role) -> None:
        exists = self._first(
            select(t.memberships.c.user_id).where(
                t.memberships.c.user_id == user_id, t.memberships.c.organization_id == organization_id
            )
        )
        if exists is None:
            self.connection.execute(
                insert(t.memberships).values(
                    user_id=user_id, organization_id=organization_id, created_at=at, role=role.value
                )
            )

    def memberships_of(self, user_id: str) -> list[tuple[Organization, Role]]:
        query = (
            select(t.organizations, t.memberships.c.role.label("membership_role"))
            .join(t.memberships, t.memberships.c.organization_id == t.organizations.c.id)
            .where(t.memberships.c.user_id == user_id)
            .order_by(t.organizations.c.path)
        )
        return [(organization_from_row(row), Role(row.membership_role)) for row in self._all(query)]

    def organizations_of(self, user_id: str) -> list[Organization]:
        query = (
            select(t.organizations)
            .join(t.memberships, t.memberships.c.organization_id == t.organizations.c.id)
            .where(t.memberships.c.user_id == user_id)
            .order_by(t.organizations.c.path)
        )
        return [organization_from_row(row) for row in self._all(query)]

    def members_of(self, organization_id: str, limit: int) -> list[tuple[User, Role]]:
        query = (
            select(t.users, t.memberships.c.role.label("membership_role"))
            .join(t.memberships, t.memberships.c.user_id == t.users.c.id)
            .where(t.memberships.c.organization_id == organization_id)
            .order_by(t.users.c.email)
            .limit(limit)
        )
        return [(_user(row), Role(row.membership_role)) for row in self._all(query)]

    def owners_of(self, organization_id: str, *, lock: bool = False) -> list[str]:
        m = t.memberships.c
        query = (
            select(m.user_id)
            .where(m.organization_id == organization_id, m.role == Role.OWNER.value)
            .order_by(m.user_id)  # one order for every taker: no deadlock between two
        )
        if lock:
            query = query.with_for_update()
        return [str(row.user_id) for row in self._all(query)]

    def role_in(self, user_id: str, organization_id: str, *, lock: bool = False) -> Role | None:
        m = t.memberships.c
        query = select(m.role).where(m.user_id == user_id, m.organization_id == organization_id)
        if lock:
            query = query.with_for_update()
        row = self._first(query)
        return Role(row.role) if row else None

    def set_role(self, user_id: str, organization_id: str, role: Role) -> bool:
        m = t.memberships.c
        result = self.connection.execute(
            update(t.memberships)
            .where(m.user_id == user_id, m.organization_id == organization_id)
            .values(role=role.value)
        )
        return result.rowcount == 1

    def add_session(
        self, session_id: str, user_id: str, token_hash: str, at: datetime, expires_at: datetime
    ) -> None:
        self.connection.execute(
            insert(t.user_sessions).values(
                id=session_id, user_id=user_id, token_hash=token_hash, created_at=at, expires_at=expires_at
            )
        )

    def find_session_user(self, token_hash: str, now: datetime) -> User | None:
        query = (
            select(t.users)
            .join(t.user_sessions, t.user_sessions.c.user_id == t.users.c.id)
            .where(
                t.user_sessions.c.token_hash == token_hash,
                t.user_sessions.c.revoked_at.is_(None),
                t.user_sessions.c.expires_at > now,
            )
        )
        row = self._first(query)
        return _user(row) if row else None

    def revoke_session(self, token_hash: str, at: datetime) -> None:
        self.connection.execute(
            update(t.user_sessions).where(t.user_sessions.c.token_hash == token_hash).values(revoked_at=at)
        )

    def password_hash(self, user_id: str) -> str | None:
        found: str | None = self.connection.execute(
            select(t.users.c.password_hash).where(t.users.c.id == user_id)
        ).scalar()
        return found

    def set_password_hash(self, user_id: str, password_hash: str) -> None:
        self.connection.execute(
            update(t.users).where(t.users.c.id == user_id).values(password_hash=password_hash)
        )

    def revoke_sessions_except(self, user_id: str, keep_token_hash: str, at: datetime) -> int:
        """Sign the person out everywhere but here (after a password change)."""
        c = t.user_sessions.c
        result = self.connection.execute(
            update(t.user_sessions)
            .where(c.user_id == user_id, c.token_hash != keep_token_hash, c.revoked_at.is_(None))
            .values(revoked_at=at)
        )
        return int(result.rowcount)

    def add_invitation(
        self,
        invitation_id: str,
        organization_id: str,
        email: str,
        code_hash: str,
        at: datetime,
        expires_at: datetime,
        role: Role,
    ) -> None:
        self.connection.execute(
            insert(t.invitations).values(
                id=invitation_id,
                organization_id=organization_id,
                email=email,
                code_hash=code_hash,
                created_at=at,
                expires_at=expires_at,
                role=role.value,
            )
        )

    def open_invitation(self, code_hash: str, now: datetime) -> tuple[str, str, str, Role] | None:
        """(invitation id, organization id, email, role) of an unexpired, unaccepted invitation."""
        c = t.invitations.c
        row = self._first(
            select(c.id, c.organization_id, c.email, c.role).where(
                c.code_hash == code_hash, c.accepted_at.is_(None), c.expires_at > now
            )
        )
        return (row.id, row.organization_id, row.email, Role(row.role)) if row else None

    def accept_invitation(self, invitation_id: str, at: datetime) -> bool:
        c = t.invitations.c
        result = self.connection.execute(
            update(t.invitations).where(c.id == invitation_id, c.accepted_at.is_(None)).values(accepted_at=at)
        )
        return result.rowcount == 1
