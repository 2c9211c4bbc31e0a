"""device transfers

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 18:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "device_transfers",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("device_id", sa.String(length=36), nullable=False),
        sa.Column("from_organization_id", sa.String(length=36), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("offered_by", sa.String(length=80), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("to_organization_id", sa.String(length=36), nullable=True),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["from_organization_id"], ["organizations.id"]),
        sa.ForeignKeyConstraint(["to_organization_id"], ["organizations.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code_hash"),
    )
    with op.batch_alter_table("device_transfers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_device_transfers_device_id"), ["device_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_device_transfers_from_organization_id"), ["from_organization_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("device_transfers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_device_transfers_from_organization_id"))
        batch_op.drop_index(batch_op.f("ix_device_transfers_device_id"))
    op.drop_table("device_transfers")
