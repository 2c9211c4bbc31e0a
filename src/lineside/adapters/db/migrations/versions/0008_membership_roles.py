"""membership roles

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 20:50:00

A membership and an invitation carry a role (owner, admin, operator, viewer). Memberships
made before roles existed were admins, and stay so, except each person's membership of their
own personal organization, which is theirs: owner.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "memberships", sa.Column("role", sa.String(length=16), server_default="admin", nullable=False)
    )
    op.add_column(
        "invitations", sa.Column("role", sa.String(length=16), server_default="admin", nullable=False)
    )
    op.execute(
        "UPDATE memberships SET role = 'owner' WHERE EXISTS (SELECT 1 FROM users"
        " WHERE users.id = memberships.user_id"
        " AND users.personal_organization_id = memberships.organization_id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("invitations") as batch_op:
        batch_op.drop_column("role")
    with op.batch_alter_table("memberships") as batch_op:
        batch_op.drop_column("role")
