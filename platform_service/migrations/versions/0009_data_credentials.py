"""data credentials: issued per-server credentials and their issue/renew/drop events

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "data_credentials",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("principal", sa.String(length=128), nullable=False),
        sa.Column("store", sa.String(length=63), nullable=False),
        sa.Column("user", sa.String(length=255), nullable=False),
        sa.Column("server_name", sa.String(length=255), nullable=False),
        sa.Column("groups", sa.JSON(), nullable=False),
        sa.Column("access", sa.String(length=16), nullable=False),
        sa.Column("ref", sa.BigInteger(), nullable=True),
        sa.Column("ttl", sa.Integer(), nullable=False),
        sa.Column("issued_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("dropped_at", sa.Float(), nullable=True),
        sa.Column("drop_reason", sa.String(length=64), nullable=True),
        sa.Column("queries", sa.BigInteger(), nullable=True),
        sa.Column("rows_read", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("principal"),
    )
    op.create_index("ix_data_credentials_live", "data_credentials", ["dropped_at", "store"])
    op.create_index("ix_data_credentials_user", "data_credentials", ["user", "store", "issued_at"])
    op.create_table(
        "data_credential_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("event", sa.String(length=16), nullable=False),
        sa.Column("store", sa.String(length=63), nullable=False),
        sa.Column("user", sa.String(length=255), nullable=False),
        sa.Column("server_name", sa.String(length=255), nullable=False),
        sa.Column("principal", sa.String(length=128), nullable=True),
        sa.Column("detail", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_data_credential_events_at", "data_credential_events", ["at"])


def downgrade() -> None:
    op.drop_index("ix_data_credential_events_at", "data_credential_events")
    op.drop_table("data_credential_events")
    op.drop_index("ix_data_credentials_user", "data_credentials")
    op.drop_index("ix_data_credentials_live", "data_credentials")
    op.drop_table("data_credentials")
