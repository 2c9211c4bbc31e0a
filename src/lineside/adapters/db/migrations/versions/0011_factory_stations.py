"""offline factory stations: delegation to a station, and the ledger it keeps

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 02:30:00

New tables and one nullable column only. ``stations`` is the server's record of each
station it delegated a line to (its budget, window, verify key, and how far its ledger has
been replayed), ``station_pool`` the device ids and token hashes it was given for token
devices (a station keeps the same rows, hashed under its own key); ``station_ledger`` is the station's own ledger (a station runs the same
schema on its own SQLite database; the server never writes that table). A CA registered
for a station closes to new registrations when the station is revoked.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stations",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("organization_id", sa.String(length=36), nullable=False),
        sa.Column("product_id", sa.String(length=36), nullable=False),
        sa.Column("factory_token_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("budget", sa.Integer(), nullable=False),
        sa.Column("pool_size", sa.Integer(), server_default="0", nullable=False),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("not_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("verify_key_pem", sa.Text(), nullable=False),
        sa.Column("authority_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("head_sequence", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("head_hash", sa.String(length=64), server_default="", nullable=False),
        sa.Column("devices_made", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_sync_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("warned", sa.String(length=32), server_default="", nullable=False),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"]),
        sa.ForeignKeyConstraint(["product_id"], ["products.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_stations_organization_id", "stations", ["organization_id"])
    op.create_table(
        "station_pool",
        sa.Column("device_id", sa.String(length=36), nullable=False),
        sa.Column("station_id", sa.String(length=36), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("device_id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_index("ix_station_pool_station_id_position", "station_pool", ["station_id", "position"])
    op.create_table(
        "station_devices",
        sa.Column("device_id", sa.String(length=36), nullable=False),
        sa.Column("station_id", sa.String(length=36), nullable=False),
        sa.PrimaryKeyConstraint("device_id"),
    )
    op.create_index("ix_station_devices_station_id", "station_devices", ["station_id"])
    op.create_table(
        "station_ledger",
        sa.Column("sequence", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("previous_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("signature", sa.String(length=200), nullable=False),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("sequence"),
    )
    op.add_column(
        "certificate_authorities",
        sa.Column("registration_closed_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.add_column("certificate_authorities", sa.Column("station_id", sa.String(length=36), nullable=True))
    op.add_column("events", sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.drop_column("recorded_at")
    with op.batch_alter_table("certificate_authorities") as batch:
        batch.drop_column("station_id")
        batch.drop_column("registration_closed_at")
    op.drop_table("station_ledger")
    op.drop_index("ix_station_devices_station_id", table_name="station_devices")
    op.drop_table("station_devices")
    op.drop_index("ix_station_pool_station_id_position", table_name="station_pool")
    op.drop_table("station_pool")
    op.drop_index("ix_stations_organization_id", table_name="stations")
    op.drop_table("stations")
