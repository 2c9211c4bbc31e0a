"""device counts, and indexes that read only a page

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 19:10:00

Plain CREATE/DROP INDEX (no batch mode): SQLite supports them in place, so a database of a
million devices is not copied.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# (table, old index, old columns, new indexes: name -> (columns, partial on))
_DEVICE_INDEXES: dict[str, tuple[list[str], str | None]] = {
    "ix_devices_organization_id_id": (["organization_id", "id"], None),
    "ix_devices_organization_id_state_id": (["organization_id", "state", "id"], None),
    "ix_devices_organization_id_serial_number": (["organization_id", "serial_number"], None),
    "ix_devices_product_id_id": (["product_id", "id"], None),
    "ix_devices_batch_id_id": (["batch_id", "id"], "batch_id"),
    "ix_devices_group_id_id": (["group_id", "id"], "group_id"),
    "ix_devices_owner_organization_id_id": (["owner_organization_id", "id"], "owner_organization_id"),
}
_REPLACED_DEVICE_INDEXES = {
    "ix_devices_organization_id": (["organization_id"], None),
    "ix_devices_batch_id": (["batch_id"], "batch_id"),
    "ix_devices_owner_organization_id": (["owner_organization_id"], "owner_organization_id"),
}
_OTHER_INDEXES = {
    "events": (
        {"ix_events_organization_id": ["organization_id"], "ix_events_subject_id": ["subject_id"]},
        {
            "ix_events_organization_id_sequence": ["organization_id", "sequence"],
            "ix_events_organization_id_type_sequence": ["organization_id", "type", "sequence"],
            "ix_events_subject_id_sequence": ["subject_id", "sequence"],
        },
    ),
    "webhook_deliveries": (
        {"ix_webhook_deliveries_endpoint_id": ["endpoint_id"]},
        {
            "ix_webhook_deliveries_endpoint_id_id": ["endpoint_id", "id"],
            "ix_webhook_deliveries_endpoint_id_status_id": ["endpoint_id", "status", "id"],
        },
    ),
}


def _partial(column: str | None) -> dict[str, Any]:
    if column is None:
        return {}
    condition = sa.text(f"{column} IS NOT NULL")
    return {"postgresql_where": condition, "sqlite_where": condition}


def _swap(
    table: str,
    drop: dict[str, tuple[list[str], str | None]],
    create: dict[str, tuple[list[str], str | None]],
) -> None:
    for name, (columns, partial_on) in create.items():
        op.create_index(name, table, columns, **_partial(partial_on))
    for name in drop:
        op.drop_index(name, table_name=table)


def upgrade() -> None:
    op.create_table(
        "device_counts",
        sa.Column("organization_id", sa.String(length=36), nullable=False),
        sa.Column("product_id", sa.String(length=36), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("claimed", sa.Boolean(), nullable=False),
        sa.Column("devices", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("organization_id", "product_id", "state", "claimed", name="pk_device_counts"),
    )
    op.execute(
        "INSERT INTO device_counts (organization_id, product_id, state, claimed, devices)"
        " SELECT organization_id, product_id, state, owner_organization_id IS NOT NULL, COUNT(*)"
        " FROM devices GROUP BY organization_id, product_id, state, owner_organization_id IS NOT NULL"
    )
    _swap("devices", _REPLACED_DEVICE_INDEXES, _DEVICE_INDEXES)
    for table, (old, new) in _OTHER_INDEXES.items():
        _swap(table, {n: (c, None) for n, c in old.items()}, {n: (c, None) for n, c in new.items()})


def downgrade() -> None:
    for table, (old, new) in _OTHER_INDEXES.items():
        _swap(table, {n: (c, None) for n, c in new.items()}, {n: (c, None) for n, c in old.items()})
    _swap("devices", _DEVICE_INDEXES, _REPLACED_DEVICE_INDEXES)
    op.drop_table("device_counts")
