"""factory PKI: makers' own certificate authorities, and devices that register themselves

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 00:00:00

New tables and nullable or defaulted columns only (SQLite adds them in place): a product's
registration policy, a certificate's issuing CA and that CA's serial, the
pending_approval lifecycle timestamp; and an index on certificates' fingerprints, which
certificate-authenticated connects look up (they read the whole table before).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_CERTIFICATE_INDEX = "ix_certificates_authority_id_issuer_serial_hex"


def upgrade() -> None:
    op.create_table(
        "certificate_authorities",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("organization_id", sa.String(length=36), nullable=False),
        sa.Column("product_id", sa.String(length=36), nullable=False),
        sa.Column("subject", sa.String(length=500), nullable=False),
        sa.Column("key_id", sa.String(length=128), nullable=False),
        sa.Column("fingerprint_sha256", sa.String(length=64), nullable=False),
        sa.Column("certificate_pem", sa.Text(), nullable=False),
        sa.Column("not_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("challenge_hash", sa.String(length=64), nullable=True),
        sa.Column("challenge_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("crl_updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expiry_warned_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"]),
        sa.ForeignKeyConstraint(["product_id"], ["products.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("product_id", "fingerprint_sha256"),
    )
    op.create_index("ix_certificate_authorities_key_id", "certificate_authorities", ["key_id"])
    op.create_index("ix_certificate_authorities_product_id", "certificate_authorities", ["product_id"])
    op.create_table(
        "authority_revocations",
        sa.Column("authority_id", sa.String(length=36), nullable=False),
        sa.Column("serial_hex", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["authority_id"], ["certificate_authorities.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("authority_id", "serial_hex"),
    )
    op.add_column(
        "products", sa.Column("registration_policy", sa.String(16), server_default="open", nullable=False)
    )
    op.add_column(
        "products", sa.Column("registration_identity", sa.String(16), server_default="cn", nullable=False)
    )
    op.add_column(
        "products", sa.Column("reregistration", sa.Boolean(), server_default=sa.false(), nullable=False)
    )
    op.add_column("certificates", sa.Column("authority_id", sa.String(length=36), nullable=True))
    op.add_column("certificates", sa.Column("issuer_serial_hex", sa.String(length=64), nullable=True))
    condition = sa.text("authority_id IS NOT NULL")
    op.create_index(
        _CERTIFICATE_INDEX,
        "certificates",
        ["authority_id", "issuer_serial_hex"],
        postgresql_where=condition,
        sqlite_where=condition,
    )
    op.add_column("devices", sa.Column("pending_approval_at", sa.DateTime(timezone=True), nullable=True))
    # Certificate-authenticated connects look a device up by fingerprint: this read the table.
    op.create_index("ix_certificates_fingerprint_sha256", "certificates", ["fingerprint_sha256"])


def downgrade() -> None:
    op.drop_index("ix_certificates_fingerprint_sha256", table_name="certificates")
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("pending_approval_at")
    op.drop_index(_CERTIFICATE_INDEX, table_name="certificates")
    with op.batch_alter_table("certificates") as batch:
        batch.drop_column("issuer_serial_hex")
        batch.drop_column("authority_id")
    with op.batch_alter_table("products") as batch:
        batch.drop_column("reregistration")
        batch.drop_column("registration_identity")
        batch.drop_column("registration_policy")
    op.drop_table("authority_revocations")
    op.drop_index("ix_certificate_authorities_product_id", table_name="certificate_authorities")
    op.drop_index("ix_certificate_authorities_key_id", table_name="certificate_authorities")
    op.drop_table("certificate_authorities")
