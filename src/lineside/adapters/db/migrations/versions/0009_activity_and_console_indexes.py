"""activity counts, and the console's device and production token indexes

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 23:40:00

``activity_counts`` starts empty: the console's charts begin at the upgrade (the funnel now,
from ``device_counts``, is whole). Plain CREATE INDEX, as in 0007: SQLite does it in place.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def _only_set(column: str) -> dict[str, Any]:
    condition = sa.text(f"{column} IS NOT NULL")
    return {"postgresql_where": condition, "sqlite_where": condition}


_ONLY_ONLINE = {"postgresql_where": sa.text("online"), "sqlite_where": sa.text("online = 1")}
_DEVICE_INDEXES: dict[str, tuple[list[str], dict[str, Any]]] = {
    "ix_devices_organization_id_mac": (["organization_id", "mac"], _only_set("mac")),
    "ix_devices_organization_id_hardware_id": (["organization_id", "hardware_id"], _only_set("hardware_id")),
    "ix_devices_product_id_firmware_version_id": (
        ["product_id", "firmware_version", "id"],
        _only_set("firmware_version"),
    ),
    "ix_devices_organization_id_online_id": (["organization_id", "id"], _ONLY_ONLINE),
}


def upgrade() -> None:
    op.create_table(
        "activity_counts",
        sa.Column("organization_id", sa.String(length=36), nullable=False),
        sa.Column("product_id", sa.String(length=36), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("measure", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=140), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("organization_id", "product_id", "hour", "measure", "source"),
    )
    op.create_index("ix_activity_counts_product_id_hour", "activity_counts", ["product_id", "hour"])
    for name, (columns, partial) in _DEVICE_INDEXES.items():
        op.create_index(name, "devices", columns, **partial)
    op.create_index("ix_production_tokens_organization_id_id", "production_tokens", ["organization_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_production_tokens_organization_id_id", table_name="production_tokens")
    for name in _DEVICE_INDEXES:
        op.drop_index(name, table_name="devices")
    op.drop_index("ix_activity_counts_product_id_hour", table_name="activity_counts")
    op.drop_table("activity_counts")
