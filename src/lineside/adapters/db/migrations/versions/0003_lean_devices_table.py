"""lean devices table

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 01:59:24.942741
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_devices_product_state"))
        batch_op.drop_constraint(batch_op.f("uq_devices_claim_code_hash"), type_="unique")
        batch_op.drop_constraint(batch_op.f("uq_devices_token_hash"), type_="unique")
        batch_op.create_index(
            "ix_devices_claim_code_hash",
            ["claim_code_hash"],
            unique=True,
            postgresql_where=sa.text("claim_code_hash IS NOT NULL"),
            sqlite_where=sa.text("claim_code_hash IS NOT NULL"),
        )
        batch_op.create_index(
            "ix_devices_token_hash",
            ["token_hash"],
            unique=True,
            postgresql_where=sa.text("token_hash IS NOT NULL"),
            sqlite_where=sa.text("token_hash IS NOT NULL"),
        )
        batch_op.drop_constraint(batch_op.f("fk_devices_group_id_device_groups"), type_="foreignkey")
        batch_op.drop_constraint(
            batch_op.f("fk_devices_owner_organization_id_organizations"), type_="foreignkey"
        )
        batch_op.drop_constraint(batch_op.f("fk_devices_product_id_products"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("fk_devices_organization_id_organizations"), type_="foreignkey")
        # Partial from now on: most devices have no owner, and only batches set batch_id.
        for column in ("batch_id", "owner_organization_id"):
            batch_op.drop_index(f"ix_devices_{column}")
            batch_op.create_index(
                f"ix_devices_{column}",
                [column],
                postgresql_where=sa.text(f"{column} IS NOT NULL"),
                sqlite_where=sa.text(f"{column} IS NOT NULL"),
            )


def downgrade() -> None:
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.create_foreign_key(
            batch_op.f("fk_devices_organization_id_organizations"),
            "organizations",
            ["organization_id"],
            ["id"],
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_devices_product_id_products"), "products", ["product_id"], ["id"]
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_devices_owner_organization_id_organizations"),
            "organizations",
            ["owner_organization_id"],
            ["id"],
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_devices_group_id_device_groups"), "device_groups", ["group_id"], ["id"]
        )
        batch_op.drop_index(
            "ix_devices_token_hash",
            postgresql_where=sa.text("token_hash IS NOT NULL"),
            sqlite_where=sa.text("token_hash IS NOT NULL"),
        )
        batch_op.drop_index(
            "ix_devices_claim_code_hash",
            postgresql_where=sa.text("claim_code_hash IS NOT NULL"),
            sqlite_where=sa.text("claim_code_hash IS NOT NULL"),
        )
        batch_op.create_unique_constraint(batch_op.f("uq_devices_token_hash"), ["token_hash"])
        batch_op.create_unique_constraint(batch_op.f("uq_devices_claim_code_hash"), ["claim_code_hash"])
        batch_op.create_index(batch_op.f("ix_devices_product_state"), ["product_id", "state"], unique=False)
